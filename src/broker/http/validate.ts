// Shape checks for POST /v1/exchange and POST /v1/grants/{grantId}/renew bodies. Strict: unknown
// fields are refused, so a typo never silently falls back to a default.
import type { ExchangeRequest, RenewRequest } from '../../shared/api.js';
import { MAX_TTL_SECONDS, ROLE_NAME, isDnsLabel } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';

const EXCHANGE_FIELDS = new Set(['namespace', 'role', 'ttlSeconds']);
const RENEW_FIELDS = new Set(['grantToken', 'ttlSeconds']);
/** A Kubernetes token: a compact JWS, as long as the API server makes them (a few KiB at most). */
const GRANT_TOKEN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_GRANT_TOKEN_BYTES = 8192;

const bad = (why: string) => new BrokerError('ERR_BAD_REQUEST', 'invalid_request', why);

/** The body as an object holding none but the allowed fields. */
function objectOf(body: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body is not an object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw bad(`unknown field ${k}`);
  return o;
}

/**
 * An optional whole number of seconds, at most MAX_TTL_SECONDS: no rule may allow more, so more is
 * a malformed request; below the minimum is the policy's ttl_too_short.
 */
function optionalTtl(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TTL_SECONDS)
    throw bad('ttlSeconds');
  return value;
}

export function parseExchangeRequest(body: unknown): ExchangeRequest {
  const o = objectOf(body, EXCHANGE_FIELDS);
  if (typeof o.namespace !== 'string' || !isDnsLabel(o.namespace)) throw bad('namespace');
  if (typeof o.role !== 'string' || !ROLE_NAME.test(o.role)) throw bad('role');
  const req: ExchangeRequest = { namespace: o.namespace, role: o.role };
  const ttlSeconds = optionalTtl(o.ttlSeconds);
  if (ttlSeconds !== undefined) req.ttlSeconds = ttlSeconds;
  return req;
}

/** Shape checks for POST /v1/grants/{grantId}/renew bodies; strict like the exchange's. */
export function parseRenewRequest(body: unknown): RenewRequest {
  const o = objectOf(body, RENEW_FIELDS);
  if (
    typeof o.grantToken !== 'string' ||
    o.grantToken.length > MAX_GRANT_TOKEN_BYTES ||
    !GRANT_TOKEN.test(o.grantToken)
  )
    throw bad('grantToken');
  const req: RenewRequest = { grantToken: o.grantToken };
  const ttlSeconds = optionalTtl(o.ttlSeconds);
  if (ttlSeconds !== undefined) req.ttlSeconds = ttlSeconds;
  return req;
}
