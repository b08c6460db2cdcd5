// Shape checks for POST /v1/exchange bodies. Strict: unknown fields are refused, so a typo never
// silently falls back to a default.
import type { ExchangeRequest } from '../../shared/api.js';
import { BrokerError } from '../../shared/errors.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const ALLOWED = new Set(['namespace', 'role', 'ttlSeconds']);
/** A week: far above any sane policy maximum; the policy caps it further. */
const MAX_TTL_SECONDS = 7 * 24 * 3600;

export function parseExchangeRequest(body: unknown): ExchangeRequest {
  const bad = (why: string) => new BrokerError('ERR_BAD_REQUEST', 'invalid_request', why);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body is not an object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!ALLOWED.has(k)) throw bad(`unknown field ${k}`);
  if (typeof o.namespace !== 'string' || !DNS_LABEL.test(o.namespace)) throw bad('namespace');
  if (typeof o.role !== 'string' || !ROLE_NAME.test(o.role)) throw bad('role');
  const req: ExchangeRequest = { namespace: o.namespace, role: o.role };
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
