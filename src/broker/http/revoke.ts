// DELETE /v1/grants/{grantId}: revokes a grant early. The caller proves it owns the grant with
// either the grant's own Kubernetes token (checked by TokenReview) or a fresh GitHub OIDC JWT of
// the same run (repository_id, run_id, run_attempt). Anyone else gets the same 404 whether or not
// the grant exists, so the endpoint cannot be used to probe for grants.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt } from 'jose';
import type { RevokeResponse } from '../../shared/api.js';
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import type { VerifiedClaims } from '../types.js';
import { findGrant, deleteGrantObjects, isOurGrant } from '../k8s/revoke.js';
import { reviewServiceAccountToken } from '../k8s/token-review.js';
import { isNotFound } from '../k8s/errors.js';
import {
  EXPIRES_AT_ANNOTATION,
  REPOSITORY_ID_LABEL,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
  isGrantId,
  labelValue,
} from '../naming.js';
import { answer } from './answer.js';
import { bearerToken } from './io.js';

/** The revocation route; it owns its audit lines and metrics. */
export function createRevokeRoute(deps: BrokerDeps) {
  return async (req: IncomingMessage, res: ServerResponse, requestId: string, grantId: string) => {
    const ctx: RevokeContext = { requestId };
    const outcome = await answer(
      deps,
      { req, res, requestId },
      {
        name: 'revocation',
        work: () => revoke(deps, req, grantId, ctx),
        denial: () => ({ claims: ctx.claims, grantId: ctx.grantId, by: ctx.by, request: 'revoke' }),
      },
    );
    if (outcome.result === 'done') deps.metrics.revocations.inc({ by: ctx.by });
  };
}

interface RevokeContext {
  requestId: string;
  claims?: VerifiedClaims;
  grantId?: string;
  by?: 'grant-token' | 'github-oidc';
}

const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);

/** Service-account tokens carry a `kubernetes.io` claim; GitHub's do not. Only used to pick the check. */
function looksLikeKubernetesToken(token: string): boolean {
  try {
    return typeof decodeJwt(token)['kubernetes.io'] === 'object';
  } catch {
    return false;
  }
}

async function revoke(
  deps: BrokerDeps,
  req: IncomingMessage,
  grantId: string,
  ctx: RevokeContext,
): Promise<{ body: RevokeResponse; audit: AuditEvent }> {
  const token = bearerToken(req);
  if (!isGrantId(grantId)) throw notFound('not_a_grant_id');
  ctx.grantId = grantId;
  const namespaces = deps.policy.namespaces();

  let namespace: string;
  let uid: string | undefined;
  let expiresAt: string | undefined;
  if (looksLikeKubernetesToken(token)) {
    ctx.by = 'grant-token';
    const who = await reviewServiceAccountToken(deps.k8s, token);
    if (!who) throw new BrokerError('ERR_UNAUTHENTICATED', 'kubernetes_token_rejected');
    if (who.name !== grantId || !namespaces.includes(who.namespace))
      throw notFound('token_of_another_identity');
    let sa;
    try {
      sa = await deps.k8s.core.readNamespacedServiceAccount({ name: grantId, namespace: who.namespace });
    } catch (err) {
      if (isNotFound(err)) throw notFound('grant_not_found');
      throw err;
    }
    if (!isOurGrant(sa, grantId)) throw notFound('not_a_broker_grant');
    namespace = who.namespace;
    uid = sa.metadata?.uid;
    expiresAt = sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION];
  } else {
    ctx.by = 'github-oidc';
    const claims = await deps.verifier.verify(token);
    ctx.claims = claims;
    const found = await findGrant(deps.k8s, namespaces, grantId);
    if (!found) throw notFound('grant_not_found');
    const labels = found.serviceAccount.metadata?.labels ?? {};
    const sameRun =
      labels[REPOSITORY_ID_LABEL] === labelValue(claims.repository_id) &&
      labels[RUN_ID_LABEL] === labelValue(claims.run_id) &&
      labels[RUN_ATTEMPT_LABEL] === labelValue(claims.run_attempt);
    if (!sameRun) throw notFound('grant_of_another_run');
    namespace = found.namespace;
    uid = found.serviceAccount.metadata?.uid;
    expiresAt = found.serviceAccount.metadata?.annotations?.[EXPIRES_AT_ANNOTATION];
  }

  // A grant revoked right after its exchange: let this replica finish creating its self-revoke
  // objects first, or they would appear after the delete (the garbage collector would still remove
  // them, as it does for a revocation served by another replica, but seconds later).
  await deps.grantWork?.settled(grantId);
  await deleteGrantObjects(deps.k8s, namespace, grantId, { uid });
  const audit: AuditEvent = {
    action: 'revocation',
    requestId: ctx.requestId,
    claims: ctx.claims,
    grantId,
    namespace,
    serviceAccount: grantId,
    serviceAccountUid: uid,
    expiresAt,
    by: ctx.by,
  };
  return { body: { grantId, revoked: true }, audit };
}
