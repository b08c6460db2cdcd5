// Shape checks for POST /v1/exchange bodies. Strict: unknown fields are refused, so a typo never
// silently falls back to a default.
import type { ExchangeRequest } from '../../shared/api.js';
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
