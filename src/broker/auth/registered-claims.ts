// The registered JWT claims (RFC 7519 §4.1) of a GitHub token, checked after its signature: the
// exact issuer, our audience, the time claims as finite numbers within the leeway, iat not in the
// future, and a bounded lifetime.
//
// The verifier checks these itself, on the payload its pre-check decoded, rather than through
// jose's jwtVerify, which would decode and parse that same segment a second time for checks the
// broker needs stricter anyway (docs/benchmarks.md, finding 6).
// That payload is what was signed: the verifier checks the signature (rs256.ts) over the very text
// the payload was decoded from.
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';

/** GitHub tokens live 5 minutes; refuse anything minted to live longer than an hour. */
export const MAX_TOKEN_LIFETIME_SECONDS = 3600;

export interface ExpectedClaims {
  issuer: string;
  audience: string;
  /** Clock skew allowed on exp, nbf and iat, in seconds. */
  leewaySeconds: number;
  /** Whole seconds since the epoch (the verifier floors its clock), as jose compared them. */
  nowSeconds: number;
}

function refuse(reason: Reason, message: string): never {
  throw new BrokerError('ERR_UNAUTHENTICATED', reason, message);
}

/** The payload's own value of a claim: never one inherited through Object.prototype. */
function own(payload: Record<string, unknown>, claim: string): unknown {
  return Object.hasOwn(payload, claim) ? payload[claim] : undefined;
}

/** A time claim as a finite number of seconds; undefined when absent and optional. */
function timeClaim(payload: Record<string, unknown>, claim: string, required: boolean): number | undefined {
  const value = own(payload, claim);
  if (value === undefined && !required) return undefined;
  if (value === undefined) refuse('jwt_claims', `missing required "${claim}" claim`);
  // JSON has no Infinity, but 1e400 parses to it: never a time a token may carry.
  if (typeof value !== 'number' || !Number.isFinite(value))
    refuse('jwt_claims', `"${claim}" claim must be a finite number`);
  return value;
}

function hasAudience(aud: unknown, audience: string): boolean {
  return typeof aud === 'string' ? aud === audience : Array.isArray(aud) && aud.includes(audience);
}

/** Throws a BrokerError with the failing claim's reason; returns the token's exp and iat. */
export function checkRegisteredClaims(
  payload: Record<string, unknown>,
  expected: ExpectedClaims,
): { exp: number; iat: number } {
  const { nowSeconds, leewaySeconds } = expected;
  // A clock that is not a number would pass every comparison below.
  if (!Number.isFinite(nowSeconds) || !Number.isFinite(leewaySeconds))
    throw new TypeError('the clock and the leeway must be finite numbers');
  // The verifier picked the issuer's keys by this very iss, so for it this holds by construction;
  // checked all the same so that the function is whole for any caller.
  if (own(payload, 'iss') !== expected.issuer) refuse('jwt_issuer', 'unexpected "iss" claim value');
  if (!hasAudience(own(payload, 'aud'), expected.audience))
    refuse('jwt_audience', 'unexpected "aud" claim value');
  const exp = timeClaim(payload, 'exp', true)!;
  const iat = timeClaim(payload, 'iat', true)!;
  const nbf = timeClaim(payload, 'nbf', false);
  if (exp <= nowSeconds - leewaySeconds) refuse('jwt_expired', '"exp" claim timestamp check failed');
  if (nbf !== undefined && nbf > nowSeconds + leewaySeconds)
    refuse('jwt_not_yet_valid', '"nbf" claim timestamp check failed');
  if (iat > nowSeconds + leewaySeconds) refuse('jwt_not_yet_valid', 'iat is in the future');
  if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS) refuse('jwt_lifetime', 'token lifetime too long');
  return { exp, iat };
}
