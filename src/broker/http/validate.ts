// Shape checks for POST /v1/exchange and POST /v1/grants/{grantId}/renew bodies. Strict: unknown
// fields are refused, so a typo never silently falls back to a default.
import type { ExchangeRequest, RenewRequest } from '../../shared/api.js';
import { MAX_TTL_SECONDS, ROLE_NAME, isDnsLabel } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';

const ALLOWED = new Set(['namespace', 'role', 'ttlSeconds']);

export function parseExchangeRequest(body: unknown): ExchangeRequest {
  const bad = (why: string) => new BrokerError('ERR_BAD_REQUEST', 'invalid_request', why);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body is not an object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!ALLOWED.has(k)) throw bad(`unknown field ${k}`);
  if (typeof o.namespace !== 'string' || !isDnsLabel(o.namespace)) throw bad('namespace');
  if (typeof o.role !== 'string' || !ROLE_NAME.test(o.role)) throw bad('role');
  const req: ExchangeRequest = { namespace: o.namespace, role: o.role };
  if (o.ttlSeconds !== undefined) {
    if (
      typeof o.ttlSeconds !== 'number' ||
      !Number.isInteger(o.ttlSeconds) ||
      o.ttlSeconds < 1 ||
      // No rule may allow more, so more is a malformed request; below the minimum is the
      // policy's ttl_too_short.
      o.ttlSeconds > MAX_TTL_SECONDS
    )
      throw bad('ttlSeconds');
    req.ttlSeconds = o.ttlSeconds;
  }
  return req;
}

const RENEW_ALLOWED = new Set(['grantToken', 'ttlSeconds']);
/** A Kubernetes token: a compact JWS, as long as the API server makes them (a few KiB at most). */
const GRANT_TOKEN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_GRANT_TOKEN_BYTES = 8192;

/** Shape checks for POST /v1/grants/{grantId}/renew bodies; strict like the exchange's. */
export function parseRenewRequest(body: unknown): RenewRequest {
  const bad = (why: string) => new BrokerError('ERR_BAD_REQUEST', 'invalid_request', why);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body is not an object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!RENEW_ALLOWED.has(k)) throw bad(`unknown field ${k}`);
  if (
    typeof o.grantToken !== 'string' ||
    o.grantToken.length > MAX_GRANT_TOKEN_BYTES ||
    !GRANT_TOKEN.test(o.grantToken)
  )
    throw bad('grantToken');
  const req: RenewRequest = { grantToken: o.grantToken };
  if (o.ttlSeconds !== undefined) {
    if (
      typeof o.ttlSeconds !== 'number' ||
      !Number.isInteger(o.ttlSeconds) ||
      o.ttlSeconds < 1 ||
      o.ttlSeconds > MAX_TTL_SECONDS
    )
      throw bad('ttlSeconds');
    req.ttlSeconds = o.ttlSeconds;
  }
  return req;
}
