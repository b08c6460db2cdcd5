// Revoking a grant early. The caller proves it owns the grant with either the grant's own
// Kubernetes token (checked by TokenReview) or a fresh GitHub OIDC JWT of the same job
// (ownership.ts, which also says why a revocation answers 404 where a renewal answers 403).
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import { runOfGrant, type RunAttribution } from '../grant-run.js';
import { readIgnoringNotFound } from '../kube/errors.js';
import type { KubeObject } from '../kube/hot-path-api.js';
import { reviewServiceAccountToken } from '../kube/token-review.js';
import { EXPIRES_AT_ANNOTATION, ROLE_ANNOTATION, RULE_ANNOTATION } from '../naming.js';
import type { VerifiedClaims } from '../types.js';
import { grantMode } from './grant-kinds.js';
import type { GrantDeps } from './grant-deps.js';
import { requireRevoker } from './ownership.js';
import { spendJwt } from './replay-ledger.js';
import { deleteGrantObjects, findGrant, isOurGrant } from './revoke.js';

export type RevokeProof =
  | { by: 'grant-token'; token: string }
  /** Verified, not yet spent: revoke spends it. */
  | { by: 'github-oidc'; claims: VerifiedClaims };

export interface RevokedGrant {
  grantId: string;
  namespace: string;
  serviceAccountUid?: string;
  /** The grant's end as its ServiceAccount said, for the audit line. */
  expiresAt?: string;
  /** Its start, role and rule, as its ServiceAccount said: for the usage report (usage/). */
  createdAt?: string;
  role?: string;
  ruleName?: string;
}

const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);

export async function revoke(
  deps: GrantDeps,
  grantId: string,
  proof: RevokeProof,
  /** Called with the run the grant records once its own token proved it (no GitHub token names one). */
  onProvenByToken?: (run: RunAttribution) => void,
): Promise<RevokedGrant> {
  const { namespace, serviceAccount } =
    proof.by === 'grant-token'
      ? await proveByGrantToken(deps, grantId, proof.token, onProvenByToken)
      : await proveByJob(deps, grantId, proof.claims);
  const uid = serviceAccount.metadata?.uid;
  // A grant revoked right after its exchange: let this replica finish creating its self-revoke
  // objects first, or they would appear after the delete (the garbage collector would still remove
  // them, as it does for a revocation served by another replica, but seconds later).
  await deps.grantWork.settled(grantId);
  // Refused at this replica's gateway from now on; the others learn it from their watch.
  deps.liveGrants?.forget(namespace, grantId);
  const accessOnly = !grantMode(deps.gatewayAudience).selfRevoke;
  await deleteGrantObjects(deps.k8s, namespace, grantId, { uid, accessOnly });
  const { annotations, creationTimestamp } = serviceAccount.metadata ?? {};
  // A string from the lean client's JSON, a Date from client-node's; never a throw past the delete.
  const created = creationTimestamp === undefined ? NaN : new Date(creationTimestamp).getTime();
  return {
    grantId,
    namespace,
    serviceAccountUid: uid,
    expiresAt: annotations?.[EXPIRES_AT_ANNOTATION],
    createdAt: Number.isFinite(created) ? new Date(created).toISOString() : undefined,
    role: annotations?.[ROLE_ANNOTATION],
    ruleName: annotations?.[RULE_ANNOTATION],
  };
}

async function proveByGrantToken(
  deps: GrantDeps,
  grantId: string,
  token: string,
  onProven?: (run: RunAttribution) => void,
): Promise<{ namespace: string; serviceAccount: KubeObject }> {
  const who = await reviewServiceAccountToken(deps.k8s, token, deps.gatewayAudience);
  if (!who) throw new BrokerError('ERR_UNAUTHENTICATED', 'kubernetes_token_rejected');
  if (who.name !== grantId || !deps.policy.namespaces().includes(who.namespace))
    throw notFound('token_of_another_identity');
  const { namespace } = who;
  const sa = await readIgnoringNotFound(() =>
    deps.k8s.hotPath.readNamespacedServiceAccount({ name: grantId, namespace }),
  );
  if (!sa) throw notFound('grant_not_found');
  if (!isOurGrant(sa, grantId)) throw notFound('not_a_broker_grant');
  onProven?.(runOfGrant(sa.metadata));
  return { namespace, serviceAccount: sa };
}

async function proveByJob(
  deps: GrantDeps,
  grantId: string,
  claims: VerifiedClaims,
): Promise<{ namespace: string; serviceAccount: KubeObject }> {
  // Spent here, so it can never be exchanged later, on any replica.
  await spendJwt(deps.k8s, deps.replayLedger, claims, deps.now);
  const found = await findGrant(deps.k8s, deps.policy.namespaces(), grantId);
  if (!found) throw notFound('grant_not_found');
  requireRevoker(found.serviceAccount.metadata?.labels ?? {}, claims);
  return found;
}
