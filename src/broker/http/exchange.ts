// POST /v1/exchange: GitHub OIDC JWT + {namespace, role, ttlSeconds?} → a short-lived grant.
// Order: cheap checks first (size, shape), then the JWT, then the per-repository rate limit, then
// the policy, and only then the cluster: a refused request never creates anything.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExchangeRequest, ExchangeResponse } from '../../shared/api.js';
import type { VerifiedClaims } from '../types.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import * as grants from '../grants/index.js';
import { rfc3339 } from '../naming.js';
import { answer } from './answer.js';
import { clientAddressOf, clientFields, type ClientAddress } from './client-address.js';
import { bearerToken, readJsonBody, requireJsonContentType } from './io.js';
import { parseExchangeRequest } from './validate.js';
import { TokenBucketLimiter, requireWithinLimit } from './rate-limit.js';

/** The exchange route; it owns its rate limiter, audit lines and metrics. */
export function createExchangeRoute(deps: BrokerDeps) {
  const now = deps.now;
  const limiter = new TokenBucketLimiter(deps.limits.perRepositoryPerMinute, now);
  return async (req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> => {
    const started = now();
    const ctx: ExchangeContext = { requestId, client: clientAddressOf(req, deps.trustedProxies) };
    const outcome = await answer(
      deps,
      { req, res, requestId },
      {
        name: 'exchange',
        work: () => exchange(deps, limiter, req, ctx),
        denial: () => ({
          claims: ctx.claims,
          namespace: ctx.request?.namespace,
          role: ctx.request?.role,
          ...clientFields(ctx.client),
        }),
      },
    );
    const result = { done: 'granted', refused: 'denied', failed: 'error' }[outcome.result];
    if (outcome.result === 'refused') deps.metrics.denials.inc({ reason: outcome.error.reason });
    if (outcome.result === 'failed') deps.metrics.failures.inc({ reason: outcome.error.reason });
    deps.metrics.exchanges.inc({ result });
    deps.metrics.exchangeSeconds.observe({ result }, (now() - started) / 1000);
  };
}

interface ExchangeContext {
  requestId: string;
  client: ClientAddress;
  /** Filled in as the request progresses, so a denial's audit line says as much as is known. */
  claims?: VerifiedClaims;
  request?: ExchangeRequest;
}

async function exchange(
  deps: BrokerDeps,
  limiter: TokenBucketLimiter,
  req: IncomingMessage,
  ctx: ExchangeContext,
): Promise<{ body: ExchangeResponse; audit: AuditEvent }> {
  requireJsonContentType(req);
  const requestBody = await readJsonBody(req, deps.limits.bodyBytes);
  const jwt = bearerToken(req);
  ctx.request = parseExchangeRequest(requestBody);
  ctx.claims = await deps.verifier.verify(jwt);

  requireWithinLimit(limiter, ctx.claims.repository_id, deps.metrics);
  const grantable = deps.policy.authorize(ctx.claims, ctx.request, ctx.client.address);
  const grant = await grants.create(deps, ctx.claims, grantable, ctx.requestId);

  const audit: AuditEvent = {
    action: 'exchange',
    requestId: ctx.requestId,
    claims: ctx.claims,
    grantId: grant.grantId,
    namespace: grant.namespace,
    serviceAccount: grant.serviceAccount,
    serviceAccountUid: grant.serviceAccountUid,
    role: grantable.role,
    roleRef: { kind: grantable.roleRef.kind, name: grantable.roleRef.name },
    policyRule: grantable.ruleName,
    credentialId: grant.credentialId,
    expiresAt: rfc3339(grant.expiresAt),
    tokenExpiresAt: rfc3339(grant.tokenExpiresAt),
    ...clientFields(ctx.client),
  };
  const body: ExchangeResponse = {
    grantId: grant.grantId,
    token: grant.token,
    tokenExpiresAt: rfc3339(grant.tokenExpiresAt),
    expiresAt: rfc3339(grant.expiresAt),
    server: deps.endpoint.server,
    certificateAuthorityData: deps.endpoint.certificateAuthorityData,
    namespace: grant.namespace,
    serviceAccount: grant.serviceAccount,
    role: grantable.role,
    mode: grants.grantMode(deps.gatewayAudience).name,
    rules: grants.rulesOf(grantable),
  };
  return { body, audit };
}
