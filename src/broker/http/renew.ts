// POST /v1/grants/{grantId}/renew: moves a live grant's end, for the same job, while the policy
// still allows it, up to the rule's session limit. Two proofs, because GitHub's OIDC token cannot
// always tell two jobs of one run apart: the grant's current Kubernetes token in the body (only the
// job that got the grant holds it; TokenReview, and the ServiceAccount uid must be the grant's), and
// a fresh GitHub OIDC JWT of the same run (and the same job, when the grant recorded it) in the
// Authorization header, spent like an exchange's. The policy decides again as for a new exchange of
// the same namespace and role; the rule that allows it now sets the ttl and the session limit.
// Order: cheap checks (path, body shape, the grant token's unverified subject), the JWT, the
// per-repository rate limit, and only then the cluster.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt } from 'jose';
import type { RenewResponse } from '../../shared/api.js';
import { BrokerError, RateLimitedError } from '../../shared/errors.js';
import type { Reason } from '../../shared/contract.js';
import type { AuditEvent } from '../audit.js';
import { credentialIdOf } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import type { VerifiedClaims } from '../types.js';
import { isOurGrant } from '../grants/revoke.js';
import { isNotFound, describeK8sError } from '../kube/errors.js';
import { recordJwtUse } from '../grants/replay-ledger.js';
import { extendGrant, planRenewal, readGrantRecord } from '../grants/renew-grant.js';
import { reviewServiceAccountToken } from '../kube/token-review.js';
import {
  CHECK_RUN_ID_LABEL,
  EXPIRES_AT_ANNOTATION,
  REPOSITORY_ID_LABEL,
  ROLE_ANNOTATION,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
  grantIdFor,
  isGrantId,
  labelValue,
  rfc3339,
} from '../naming.js';
import { answer } from './answer.js';
import { clientAddressOf, clientFields, type ClientAddress } from './client-address.js';
import { bearerToken, readJsonBody, requireJsonContentType } from './io.js';
import { serviceAccountSubject } from './token-payload.js';
import { TokenBucketLimiter } from './rate-limit.js';
import { parseRenewRequest } from './validate.js';

/** The renewal route; it owns its rate limiter, audit lines and metrics. */
export function createRenewRoute(deps: BrokerDeps) {
  const now = deps.now ?? Date.now;
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
const forbidden = (reason: Reason, message?: string) => new BrokerError('ERR_FORBIDDEN', reason, message);

async function renew(
  deps: BrokerDeps,
  limiter: TokenBucketLimiter,
  req: IncomingMessage,
  grantId: string,
  ctx: RenewContext,
): Promise<{ body: RenewResponse; audit: AuditEvent }> {
  const now = deps.now ?? Date.now;
  if (!isGrantId(grantId)) throw notFound('not_a_grant_id');
  ctx.grantId = grantId;
  requireJsonContentType(req);
  const request = parseRenewRequest(await readJsonBody(req, deps.limits.bodyBytes));
  const jwt = bearerToken(req);
  const namespaces = deps.policy.namespaces();
  let grantTokenPayload;
  try {
    grantTokenPayload = decodeJwt(request.grantToken);
  } catch {
    throw new BrokerError('ERR_BAD_REQUEST', 'invalid_request', 'grantToken is not a JWT');
  }
  const subject = serviceAccountSubject(grantTokenPayload);
  if (subject?.name !== grantId || !namespaces.includes(subject.namespace))
    throw notFound('token_of_another_identity');

  const claims = await deps.verifier.verify(jwt);
  ctx.claims = claims;
  const decision = limiter.take(claims.repository_id);
  if (!decision.allowed) {
    deps.metrics.rateLimited.inc();
    throw new RateLimitedError(decision.retryAfterSeconds);
  }
  // Spent here, whatever the outcome, so it can never be exchanged or used again, on any replica.
  const ledger = deps.replayLedger;
  if (ledger) {
    const keepUntil = new Date((claims.exp + ledger.keepAfterExpirySeconds) * 1000);
    await recordJwtUse(deps.k8s, ledger.namespace, { grantId: grantIdFor(claims), keepUntil }, deps.now);
  }

  const who = await reviewServiceAccountToken(deps.k8s, request.grantToken, deps.gatewayAudience);
  if (!who) throw new BrokerError('ERR_UNAUTHENTICATED', 'kubernetes_token_rejected');
  if (who.name !== grantId || who.namespace !== subject.namespace)
    throw notFound('token_of_another_identity');
  const namespace = who.namespace;
  let sa;
  try {
    sa = await deps.k8s.core.readNamespacedServiceAccount({ name: grantId, namespace });
  } catch (err) {
    if (isNotFound(err)) throw notFound('grant_not_found');
    throw new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', `read grant: ${describeK8sError(err)}`, {
      cause: err,
    });
  }
  if (!isOurGrant(sa, grantId)) throw notFound('not_a_broker_grant');
  const uid = sa.metadata?.uid ?? '';
  // A token of a deleted grant's same-named successor is not this grant's.
  if (!uid || (who.uid !== undefined && who.uid !== uid)) throw notFound('token_of_another_identity');

  const labels = sa.metadata?.labels ?? {};
  const sameRun =
    labels[REPOSITORY_ID_LABEL] === labelValue(claims.repository_id) &&
    labels[RUN_ID_LABEL] === labelValue(claims.run_id) &&
    labels[RUN_ATTEMPT_LABEL] === labelValue(claims.run_attempt);
  if (!sameRun) throw forbidden('grant_of_another_run');
  const job = labels[CHECK_RUN_ID_LABEL];
  if (job !== undefined && job !== labelValue(claims.check_run_id)) throw forbidden('grant_of_another_job');

  const annotations = sa.metadata?.annotations ?? {};
  const role = annotations[ROLE_ANNOTATION] ?? '';
  // From where it comes, as for an exchange: a rule with sourceRanges renews only from inside them.
  const grantable = deps.policy.authorize(
    claims,
    { namespace, role, ...(request.ttlSeconds === undefined ? {} : { ttlSeconds: request.ttlSeconds }) },
    ctx.client.address,
  );
  if (grantable.maxSessionSeconds === undefined)
    throw forbidden('renewal_not_allowed', `rule ${grantable.ruleName} sets no maxSessionSeconds`);

  const record = ledger ? await readGrantRecord(deps.k8s, ledger.namespace, grantId, namespace) : undefined;
  if (ledger && !record) throw notFound('not_a_broker_grant');
  const annotated = Date.parse(annotations[EXPIRES_AT_ANNOTATION] ?? '');
  const currentExpiresAt = Math.min(
    Number.isFinite(annotated) ? annotated : -Infinity,
    record?.grantExpiresAt ?? Infinity,
  );
  const created = sa.metadata?.creationTimestamp ? new Date(sa.metadata.creationTimestamp).getTime() : NaN;
  if (!Number.isFinite(created))
    throw new BrokerError('ERR_INTERNAL', 'unexpected_error', 'grant without creation time');
  const sessionEndsAt = created + grantable.maxSessionSeconds * 1000;
  const tokenExp = typeof grantTokenPayload.exp === 'number' ? grantTokenPayload.exp * 1000 : -Infinity;
  const at = now();
  const plan = planRenewal({
    now: at,
    ttlSeconds: grantable.ttlSeconds,
    currentExpiresAt,
    sessionEndsAt,
    tokenExpiresAt: tokenExp,
  });
  if (plan.kind === 'expired') throw forbidden('grant_expired');
  if (plan.kind === 'limit')
    throw forbidden('session_limit_reached', `session ended at ${rfc3339(new Date(sessionEndsAt))}`);

  const changed = plan.expiresAt > currentExpiresAt || plan.mintToken;
  const extended = changed
    ? await extendGrant(
        deps.k8s,
        { namespace, serviceAccount: sa, record: record?.lease, ledgerNamespace: ledger?.namespace },
        plan,
        at,
        deps.gatewayAudience,
      )
    : { expiresAt: new Date(currentExpiresAt), minted: undefined };
  ctx.extended = extended.expiresAt.getTime() > currentExpiresAt;
  const token = extended.minted?.token ?? request.grantToken;
  const tokenExpiresAt = extended.minted?.tokenExpiresAt ?? new Date(tokenExp);

  const audit: AuditEvent = {
    action: 'renewal',
    requestId: ctx.requestId,
    claims,
    grantId,
    namespace,
    serviceAccount: grantId,
    serviceAccountUid: uid,
    role,
    policyRule: grantable.ruleName,
    previousExpiresAt: rfc3339(new Date(currentExpiresAt)),
    expiresAt: rfc3339(extended.expiresAt),
    sessionEndsAt: rfc3339(new Date(sessionEndsAt)),
    tokenExpiresAt: rfc3339(tokenExpiresAt),
    newToken: extended.minted !== undefined,
    ...(extended.minted ? { credentialId: credentialIdOf(extended.minted.token) } : {}),
    ...clientFields(ctx.client),
  };
  const body: RenewResponse = {
    grantId,
    token,
    tokenExpiresAt: rfc3339(tokenExpiresAt),
    expiresAt: rfc3339(extended.expiresAt),
    sessionEndsAt: rfc3339(new Date(sessionEndsAt)),
    newToken: extended.minted !== undefined,
  };
  return { body, audit };
}
