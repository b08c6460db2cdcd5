// DELETE /v1/grants/{grantId}: revokes a grant early. The caller proves it owns the grant with
// either the grant's own Kubernetes token (checked by TokenReview) or a fresh GitHub OIDC JWT of
// the same job (repository_id, run_id, run_attempt and check_run_id as the grant recorded them;
// a sibling job of the same run is someone else). Anyone else gets the same 404 whether or not
// the grant exists, so the endpoint cannot be used to probe for grants.
// Order: cheap checks on the path and the token's shape, then a route-wide rate limit, and only
// then a TokenReview or a JWT verification: an unauthenticated flood costs the API server nothing.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RevokeResponse } from '../../shared/api.js';
import type { Reason } from '../../shared/contract.js';
import { BrokerError, RateLimitedError } from '../../shared/errors.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import type { VerifiedClaims } from '../types.js';
import { runOfGrant, type RunAttribution } from '../grant-run.js';
import { findGrant, deleteGrantObjects, isOurGrant } from '../grants/revoke.js';
import { recordJwtUse } from '../grants/replay-ledger.js';
import { reviewServiceAccountToken } from '../kube/token-review.js';
import { isNotFound } from '../kube/errors.js';
import {
  CHECK_RUN_ID_LABEL,
  EXPIRES_AT_ANNOTATION,
  REPOSITORY_ID_LABEL,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
  grantIdFor,
  isGrantId,
  labelValue,
} from '../naming.js';
import { answer } from './answer.js';
import { bearerToken } from './io.js';
import { serviceAccountSubject, unverifiedPayload } from './token-payload.js';
import { DEFAULT_REVOCATIONS_PER_MINUTE, TokenBucketLimiter } from './rate-limit.js';

const ROUTE_KEY = 'revoke';

/** The revocation route; it owns its audit lines and metrics. */
export function createRevokeRoute(deps: BrokerDeps) {
  const limiter = new TokenBucketLimiter(
    deps.limits.revocationsPerMinute ?? DEFAULT_REVOCATIONS_PER_MINUTE,
    deps.now ?? Date.now,
  );
  return async (req: IncomingMessage, res: ServerResponse, requestId: string, grantId: string) => {
    const ctx: RevokeContext = { requestId };
    const outcome = await answer(
      deps,
      { req, res, requestId },
      {
        name: 'revocation',
        work: () => revoke(deps, limiter, req, grantId, ctx),
        denial: () => ({ claims: ctx.claims, grantId: ctx.grantId, by: ctx.by, request: 'revoke' }),
      },
    );
    if (outcome.result === 'done') deps.metrics.revocations.inc({ by: ctx.by });
  };
}

interface RevokeContext {
  requestId: string;
  /** The verified GitHub token's claims, or the grant's recorded run when its own token was used. */
  claims?: VerifiedClaims | RunAttribution;
  grantId?: string;
  by?: 'grant-token' | 'github-oidc';
}

const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);

async function revoke(
  deps: BrokerDeps,
  limiter: TokenBucketLimiter,
  req: IncomingMessage,
  grantId: string,
  ctx: RevokeContext,
): Promise<{ body: RevokeResponse; audit: AuditEvent }> {
  const token = bearerToken(req);
  if (!isGrantId(grantId)) throw notFound('not_a_grant_id');
  ctx.grantId = grantId;
  const namespaces = deps.policy.namespaces();
  const payload = unverifiedPayload(token);
  const kubernetesToken = typeof payload['kubernetes.io'] === 'object';
  ctx.by = kubernetesToken ? 'grant-token' : 'github-oidc';
  if (kubernetesToken) {
    const subject = serviceAccountSubject(payload);
    if (subject?.name !== grantId || !namespaces.includes(subject.namespace))
      throw notFound('token_of_another_identity');
  }
  const decision = limiter.take(ROUTE_KEY);
  if (!decision.allowed) {
    deps.metrics.rateLimited.inc();
    throw new RateLimitedError(decision.retryAfterSeconds);
  }

  let namespace: string;
  let uid: string | undefined;
  let expiresAt: string | undefined;
  if (kubernetesToken) {
    const who = await reviewServiceAccountToken(deps.k8s, token, deps.gatewayAudience);
    if (!who) throw new BrokerError('ERR_UNAUTHENTICATED', 'kubernetes_token_rejected');
    if (who.name !== grantId || !namespaces.includes(who.namespace))
      throw notFound('token_of_another_identity');
    let sa;
    try {
      sa = await deps.k8s.hotPath.readNamespacedServiceAccount({ name: grantId, namespace: who.namespace });
    } catch (err) {
      if (isNotFound(err)) throw notFound('grant_not_found');
      throw err;
    }
    if (!isOurGrant(sa, grantId)) throw notFound('not_a_broker_grant');
    // No GitHub token came: the run is the one the grant recorded, so the line still names it.
    ctx.claims = runOfGrant(sa.metadata);
    namespace = who.namespace;
    uid = sa.metadata?.uid;
    expiresAt = sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION];
  } else {
    const claims = await deps.verifier.verify(token);
    ctx.claims = claims;
    // Spent here, so it can never be exchanged later, on any replica.
    const ledger = deps.replayLedger;
    if (ledger) {
      const keepUntil = new Date((claims.exp + ledger.keepAfterExpirySeconds) * 1000);
      await recordJwtUse(deps.k8s, ledger.namespace, { grantId: grantIdFor(claims), keepUntil }, deps.now);
    }
    const found = await findGrant(deps.k8s, namespaces, grantId);
    if (!found) throw notFound('grant_not_found');
    const labels = found.serviceAccount.metadata?.labels ?? {};
    const sameRun =
      labels[REPOSITORY_ID_LABEL] === labelValue(claims.repository_id) &&
      labels[RUN_ID_LABEL] === labelValue(claims.run_id) &&
      labels[RUN_ATTEMPT_LABEL] === labelValue(claims.run_attempt);
    if (!sameRun) throw notFound('grant_of_another_run');
    // A grant whose token had no check_run_id can only be revoked with its own token.
    const job = labels[CHECK_RUN_ID_LABEL];
    if (job === undefined || claims.check_run_id === undefined || job !== labelValue(claims.check_run_id))
      throw notFound('grant_of_another_job');
    namespace = found.namespace;
    uid = found.serviceAccount.metadata?.uid;
    expiresAt = found.serviceAccount.metadata?.annotations?.[EXPIRES_AT_ANNOTATION];
  }

  // A grant revoked right after its exchange: let this replica finish creating its self-revoke
  // objects first, or they would appear after the delete (the garbage collector would still remove
  // them, as it does for a revocation served by another replica, but seconds later).
  await deps.grantWork?.settled(grantId);
  // Refused at this replica's gateway from now on; the others learn it from their watch.
  deps.liveGrants?.forget(namespace, grantId);
  await deleteGrantObjects(deps.k8s, namespace, grantId, { uid, accessOnly: !!deps.gatewayAudience });
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
