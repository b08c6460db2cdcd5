// Renewing a grant: moves a live grant's end, for the same job, while the policy still allows it,
// up to the rule's session limit. Two proofs, because GitHub's OIDC token cannot always tell two jobs
// of one run apart: the grant's current Kubernetes token (only the job that got the grant holds it;
// TokenReview, and the ServiceAccount uid must be the grant's), and a fresh GitHub OIDC JWT of the
// same run (ownership.ts), spent like an exchange's. The policy decides again as for a new exchange
// of the same namespace and role; the rule that allows it now sets the ttl and the session limit.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import { credentialIdOf } from '../audit.js';
import { describeK8sError, readIgnoringNotFound } from '../kube/errors.js';
import { reviewServiceAccountToken } from '../kube/token-review.js';
import { EXPIRES_AT_ANNOTATION, ROLE_ANNOTATION, rfc3339 } from '../naming.js';
import type { VerifiedClaims } from '../types.js';
import type { GrantDeps } from './grant-deps.js';
import { requireRenewer } from './ownership.js';
import { extendGrant, planRenewal, readGrantRecord } from './renew-grant.js';
import { spendJwt } from './replay-ledger.js';
import { isOurGrant } from './revoke.js';

export interface RenewRequest {
  grantId: string;
  /** The grant's current Kubernetes token, the namespace its subject names, and its exp (epoch ms). */
  grantToken: { token: string; namespace: string; expiresAt: number };
  /** The caller's verified GitHub JWT; spent here, whatever the outcome. */
  claims: VerifiedClaims;
  ttlSeconds?: number;
  /** Where the request comes from: a rule with sourceRanges renews only from inside them. */
  clientAddress?: string;
}

export interface RenewedGrant {
  grantId: string;
  namespace: string;
  serviceAccountUid: string;
  role: string;
  ruleName: string;
  previousExpiresAt: Date;
  expiresAt: Date;
  sessionEndsAt: Date;
  /** The token the job holds from now on: a new one when `minted`, or the one it showed. */
  token: string;
  tokenExpiresAt: Date;
  minted: boolean;
  /** Set when a token was minted. */
  credentialId?: string;
}

const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);
const forbidden = (reason: Reason, message?: string) => new BrokerError('ERR_FORBIDDEN', reason, message);

export async function renew(deps: GrantDeps, request: RenewRequest): Promise<RenewedGrant> {
  const { grantId, claims } = request;
  await spendJwt(deps.k8s, deps.replayLedger, claims, deps.now);
  const { sa, namespace, uid } = await proveByGrantToken(deps, grantId, request.grantToken);
  requireRenewer(sa.metadata?.labels ?? {}, claims);

  const role = sa.metadata?.annotations?.[ROLE_ANNOTATION] ?? '';
  const ttl = request.ttlSeconds === undefined ? {} : { ttlSeconds: request.ttlSeconds };
  const grantable = deps.policy.authorize(claims, { namespace, role, ...ttl }, request.clientAddress);
  if (grantable.maxSessionSeconds === undefined)
    throw forbidden('renewal_not_allowed', `rule ${grantable.ruleName} sets no maxSessionSeconds`);

  const ledgerNamespace = deps.replayLedger.namespace;
  const record = await readGrantRecord(deps.k8s, ledgerNamespace, grantId, namespace);
  if (!record) throw notFound('not_a_broker_grant');
  const { currentExpiresAt, sessionEndsAt } = sessionOf(
    sa,
    record.grantExpiresAt,
    grantable.maxSessionSeconds,
  );
  const at = deps.now();
  const plan = planRenewal({
    now: at,
    ttlSeconds: grantable.ttlSeconds,
    currentExpiresAt,
    sessionEndsAt,
    tokenExpiresAt: request.grantToken.expiresAt,
  });
  if (plan.kind === 'expired') throw forbidden('grant_expired');
  if (plan.kind === 'limit')
    throw forbidden('session_limit_reached', `session ended at ${rfc3339(new Date(sessionEndsAt))}`);

  const changed = plan.expiresAt > currentExpiresAt || plan.mintToken;
  const extended = changed
    ? await extendGrant(
        deps.k8s,
        { namespace, serviceAccount: sa, record: record.lease, ledgerNamespace },
        plan,
        at,
        deps.gatewayAudience,
      )
    : { expiresAt: new Date(currentExpiresAt), minted: undefined };
  const minted = extended.minted;
  return {
    grantId,
    namespace,
    serviceAccountUid: uid,
    role,
    ruleName: grantable.ruleName,
    previousExpiresAt: new Date(currentExpiresAt),
    expiresAt: extended.expiresAt,
    sessionEndsAt: new Date(sessionEndsAt),
    token: minted?.token ?? request.grantToken.token,
    tokenExpiresAt: minted?.tokenExpiresAt ?? new Date(request.grantToken.expiresAt),
    minted: minted !== undefined,
    ...(minted ? { credentialId: credentialIdOf(minted.token) } : {}),
  };
}

/** The grant's ServiceAccount, proven by the grant's own token: TokenReview, then the same uid. */
async function proveByGrantToken(
  deps: GrantDeps,
  grantId: string,
  grantToken: RenewRequest['grantToken'],
): Promise<{ sa: V1ServiceAccount; namespace: string; uid: string }> {
  const who = await reviewServiceAccountToken(deps.k8s, grantToken.token, deps.gatewayAudience);
  if (!who) throw new BrokerError('ERR_UNAUTHENTICATED', 'kubernetes_token_rejected');
  if (who.name !== grantId || who.namespace !== grantToken.namespace)
    throw notFound('token_of_another_identity');
  const { namespace } = who;
  // Read through client-node: the renewal writes this very object back (renew-grant.ts).
  const sa = await readIgnoringNotFound(() =>
    deps.k8s.core.readNamespacedServiceAccount({ name: grantId, namespace }),
  ).catch((err: unknown) => {
    throw new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', `read grant: ${describeK8sError(err)}`, {
      cause: err,
    });
  });
  if (!sa) throw notFound('grant_not_found');
  if (!isOurGrant(sa, grantId)) throw notFound('not_a_broker_grant');
  const uid = sa.metadata?.uid ?? '';
  // A token of a deleted grant's same-named successor is not this grant's.
  if (!uid || (who.uid !== undefined && who.uid !== uid)) throw notFound('token_of_another_identity');
  return { sa, namespace, uid };
}

/**
 * When the grant ends now (the earlier of the ServiceAccount's annotation and the JWT-use record's),
 * and when its session must end (creation + the rule's limit). All epoch ms.
 */
function sessionOf(
  sa: V1ServiceAccount,
  recordedExpiresAt: number,
  maxSessionSeconds: number,
): { currentExpiresAt: number; sessionEndsAt: number } {
  const annotated = Date.parse(sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION] ?? '');
  const currentExpiresAt = Math.min(Number.isFinite(annotated) ? annotated : -Infinity, recordedExpiresAt);
  const created = sa.metadata?.creationTimestamp ? new Date(sa.metadata.creationTimestamp).getTime() : NaN;
  if (!Number.isFinite(created))
    throw new BrokerError('ERR_INTERNAL', 'unexpected_error', 'grant without creation time');
  return { currentExpiresAt, sessionEndsAt: created + maxSessionSeconds * 1000 };
}
