// DELETE /v1/grants/{grantId}: revokes a grant early, on the grant's own Kubernetes token or a fresh
// GitHub OIDC JWT of the same job (grants/revocation.ts; who counts as the same job, and why anyone
// else gets the same 404 whether or not the grant exists, is grants/ownership.ts's).
// Order: cheap checks on the path and the token's shape, then a route-wide rate limit, and only
// then a TokenReview or a JWT verification: an unauthenticated flood costs the API server nothing.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RevokeResponse } from '../../shared/api.js';
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import type { VerifiedClaims } from '../types.js';
import type { RunAttribution } from '../grant-run.js';
import * as grants from '../grants/index.js';
import { isGrantId } from '../naming.js';
import { answer } from './answer.js';
import { bearerToken } from './io.js';
import { serviceAccountSubject, unverifiedPayload } from './token-payload.js';
import { DEFAULT_REVOCATIONS_PER_MINUTE } from '../config/broker-config.js';
import { TokenBucketLimiter, requireWithinLimit } from './rate-limit.js';

const ROUTE_KEY = 'revoke';

/** The revocation route; it owns its audit lines and metrics. */
export function createRevokeRoute(deps: BrokerDeps) {
  const limiter = new TokenBucketLimiter(
    deps.limits.revocationsPerMinute ?? DEFAULT_REVOCATIONS_PER_MINUTE,
    deps.now,
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
  const payload = unverifiedPayload(token);
  const kubernetesToken = typeof payload['kubernetes.io'] === 'object';
  ctx.by = kubernetesToken ? 'grant-token' : 'github-oidc';
  if (kubernetesToken) {
    const subject = serviceAccountSubject(payload);
    if (subject?.name !== grantId || !deps.policy.namespaces().includes(subject.namespace))
      throw notFound('token_of_another_identity');
  }
  requireWithinLimit(limiter, ROUTE_KEY, deps.metrics);

  let proof: grants.RevokeProof;
  if (kubernetesToken) proof = { by: 'grant-token', token };
  else {
    const claims = await deps.verifier.verify(token);
    ctx.claims = claims;
    proof = { by: 'github-oidc', claims };
  }
  // No GitHub token came with the grant's own: the line names the run the grant recorded.
  const revoked = await grants.revoke(deps, grantId, proof, (run) => (ctx.claims = run));
  // What the grant did, for the job summary: the gateway's count, or the API server's audit log.
  const usage = await deps.grantUsage?.report(revoked);
  const audit: AuditEvent = {
    action: 'revocation',
    requestId: ctx.requestId,
    claims: ctx.claims,
    grantId,
    namespace: revoked.namespace,
    serviceAccount: grantId,
    serviceAccountUid: revoked.serviceAccountUid,
    expiresAt: revoked.expiresAt,
    by: ctx.by,
  };
  return { body: { grantId, revoked: true, ...usage }, audit };
}
