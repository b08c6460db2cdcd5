// POST /v1/exchange: GitHub OIDC JWT + {namespace, role, ttlSeconds?} → a short-lived grant.
// Order: cheap checks first (size, shape), then the JWT, then the per-repository rate limit, then
// the policy, and only then the cluster: a refused request never creates anything.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExchangeRequest, ExchangeResponse } from '../../shared/api.js';
import { BrokerError, RateLimitedError } from '../../shared/errors.js';
import type { VerifiedClaims } from '../types.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import { createGrant } from '../grants/grants.js';
import { recordJwtUse } from '../grants/replay-ledger.js';
import { deleteIgnoringNotFound, describeK8sError } from '../kube/errors.js';
import { grantIdFor, rfc3339 } from '../naming.js';
import { answer } from './answer.js';
import { clientAddressOf, clientFields, type ClientAddress } from './client-address.js';
import { bearerToken, readJsonBody, requireJsonContentType } from './io.js';
import { parseExchangeRequest } from './validate.js';
import { TokenBucketLimiter } from './rate-limit.js';

/** The exchange route; it owns its rate limiter, audit lines and metrics. */
export function createExchangeRoute(deps: BrokerDeps) {
  const now = deps.now ?? Date.now;
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

  const decision = limiter.take(ctx.claims.repository_id);
  if (!decision.allowed) {
    deps.metrics.rateLimited.inc();
    throw new RateLimitedError(decision.retryAfterSeconds);
  }

  const grantable = deps.policy.authorize(ctx.claims, ctx.request, ctx.client.address);
  const grantId = grantIdFor(ctx.claims);
  const expiresAt = new Date((deps.now ?? Date.now)() + grantable.ttlSeconds * 1000);
  const ledger = deps.replayLedger;
  if (ledger) {
    // Kept while the JWT could be presented; the reaper also keeps it while the grant exists, as the
    // grant's proof. A revoked grant's record goes once its JWT is spent, not at the grant's expiry.
    const keepUntil = new Date((ctx.claims.exp + ledger.keepAfterExpirySeconds) * 1000);
    const use = { grantId, namespace: grantable.namespace, grantExpiresAt: expiresAt, keepUntil };
    await recordJwtUse(deps.k8s, ledger.namespace, use, deps.now);
  }
  const logRollbackError = (what: string, err: unknown) =>
    deps.logger.error('rollback failed; the reaper will delete the leftovers', {
      requestId: ctx.requestId,
      what,
      error: describeK8sError(err),
    });
  let grant;
  try {
    grant = await createGrant(deps.k8s, ctx.claims, grantable, {
      now: deps.now,
      expiresAt,
      inlineRoles: deps.inlineRoles,
      gatewayAudience: deps.gatewayAudience,
      onRollbackError: logRollbackError,
      onSelfRevokeError: (grantId, err) =>
        deps.logger.error(
          'could not create the self-revoke permission; revoke through the broker or the reaper',
          {
            requestId: ctx.requestId,
            grantId,
            error: describeK8sError(err),
          },
        ),
    });
  } catch (err) {
    // Nothing was granted, so the JWT may be used again (e.g. a retry after a 503) — unless this
    // was itself a replay, whose record belongs to the first use.
    const replay = err instanceof BrokerError && err.reason === 'jwt_replayed';
    if (ledger && !replay)
      await deleteIgnoringNotFound(() =>
        deps.k8s.hotPath.deleteNamespacedLease({ name: grantId, namespace: ledger.namespace }),
      ).catch((e: unknown) => logRollbackError(`JWT-use record ${grantId}`, e));
    throw err;
  }

  deps.grantWork?.track(grant.grantId, grant.selfRevoke);

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
    mode: deps.gatewayAudience ? 'gateway' : 'direct',
    rules:
      grantable.roleRef.kind === 'Inline' && grantable.rules.length === 0
        ? grantable.roleRef.rules
        : grantable.rules,
  };
  return { body, audit };
}
