// POST /v1/grants/{grantId}/renew: the grant's current Kubernetes token in the body, a fresh GitHub
// OIDC JWT of the same run in the Authorization header; what a renewal proves and moves is
// grants/renewal.ts's.
// Order: cheap checks (path, body shape, the grant token's unverified subject), the JWT, the
// per-repository rate limit, and only then the cluster.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RenewResponse } from '../../shared/api.js';
import { BrokerError } from '../../shared/errors.js';
import type { Reason } from '../../shared/contract.js';
import type { AuditEvent } from '../audit.js';
import { unverifiedJwtPayload } from '../unverified-jwt.js';
import type { BrokerDeps } from '../deps.js';
import type { VerifiedClaims } from '../types.js';
import * as grants from '../grants/index.js';
import { isGrantId, rfc3339 } from '../naming.js';
import { answer } from './answer.js';
import { clientAddressOf, clientFields, type ClientAddress } from './client-address.js';
import { bearerToken, readJsonBody, requireJsonContentType } from './io.js';
import { serviceAccountSubject } from './token-payload.js';
import { TokenBucketLimiter, requireWithinLimit } from './rate-limit.js';
import { parseRenewRequest } from './validate.js';

/** The renewal route; it owns its rate limiter, audit lines and metrics. */
export function createRenewRoute(deps: BrokerDeps) {
  const now = deps.now;
  const limiter = new TokenBucketLimiter(deps.limits.perRepositoryPerMinute, now);
  return async (req: IncomingMessage, res: ServerResponse, requestId: string, grantId: string) => {
    const started = now();
    const ctx: RenewContext = { requestId, client: clientAddressOf(req, deps.trustedProxies) };
    const outcome = await answer(
      deps,
      { req, res, requestId },
      {
        name: 'renewal',
        work: () => renew(deps, limiter, req, grantId, ctx),
        denial: () => ({
          claims: ctx.claims,
          grantId: ctx.grantId,
          request: 'renew',
          ...clientFields(ctx.client),
        }),
      },
    );
    const result =
      outcome.result === 'done'
        ? ctx.extended
          ? 'renewed'
          : 'unchanged'
        : outcome.result === 'refused'
          ? 'denied'
          : 'error';
    if (outcome.result === 'refused') deps.metrics.denials.inc({ reason: outcome.error.reason });
    deps.metrics.renewals.inc({ result });
    deps.metrics.renewalSeconds.observe({ result }, (now() - started) / 1000);
  };
}

interface RenewContext {
  requestId: string;
  client: ClientAddress;
  claims?: VerifiedClaims;
  grantId?: string;
  /** Whether the grant's end moved. */
  extended?: boolean;
}

const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);

async function renew(
  deps: BrokerDeps,
  limiter: TokenBucketLimiter,
  req: IncomingMessage,
  grantId: string,
  ctx: RenewContext,
): Promise<{ body: RenewResponse; audit: AuditEvent }> {
  if (!isGrantId(grantId)) throw notFound('not_a_grant_id');
  ctx.grantId = grantId;
  requireJsonContentType(req);
  const request = parseRenewRequest(await readJsonBody(req, deps.limits.bodyBytes));
  const jwt = bearerToken(req);
  const grantTokenPayload = unverifiedJwtPayload(request.grantToken);
  if (!grantTokenPayload)
    throw new BrokerError('ERR_BAD_REQUEST', 'invalid_request', 'grantToken is not a JWT');
  const subject = serviceAccountSubject(grantTokenPayload);
  if (subject?.name !== grantId || !deps.policy.namespaces().includes(subject.namespace))
    throw notFound('token_of_another_identity');

  const claims = await deps.verifier.verify(jwt);
  ctx.claims = claims;
  requireWithinLimit(limiter, claims.repository_id, deps.metrics);
  const exp = grantTokenPayload.exp;
  const renewed = await grants.renew(deps, {
    grantId,
    grantToken: {
      token: request.grantToken,
      namespace: subject.namespace,
      expiresAt: typeof exp === 'number' ? exp * 1000 : -Infinity,
    },
    claims,
    ...(request.ttlSeconds === undefined ? {} : { ttlSeconds: request.ttlSeconds }),
    clientAddress: ctx.client.address,
  });
  ctx.extended = renewed.expiresAt > renewed.previousExpiresAt;

  const audit: AuditEvent = {
    action: 'renewal',
    requestId: ctx.requestId,
    claims,
    grantId,
    namespace: renewed.namespace,
    serviceAccount: grantId,
    serviceAccountUid: renewed.serviceAccountUid,
    role: renewed.role,
    policyRule: renewed.ruleName,
    previousExpiresAt: rfc3339(renewed.previousExpiresAt),
    expiresAt: rfc3339(renewed.expiresAt),
    sessionEndsAt: rfc3339(renewed.sessionEndsAt),
    tokenExpiresAt: rfc3339(renewed.tokenExpiresAt),
    newToken: renewed.minted,
    ...(renewed.credentialId ? { credentialId: renewed.credentialId } : {}),
    ...clientFields(ctx.client),
  };
  const body: RenewResponse = {
    grantId,
    token: renewed.token,
    tokenExpiresAt: rfc3339(renewed.tokenExpiresAt),
    expiresAt: rfc3339(renewed.expiresAt),
    sessionEndsAt: rfc3339(renewed.sessionEndsAt),
    newToken: renewed.minted,
  };
  return { body, audit };
}
