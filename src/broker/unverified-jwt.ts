// Reading what a JWT says before anyone verified it: only to pick the check to run (whose issuer's
// keys, which grant) and to refuse early what could never pass it, or the credential id of a token
// the API server has just issued to the broker (audit.ts). Nothing here authenticates anyone; every
// other caller verifies the token afterwards (auth/token-verifier.ts, or the API server's TokenReview).
//
// Node's base64url decoder, not jose's decodeJwt, which took ~10 µs of the verifier's ~16 µs of
// pre-checks per token and most of the gateway's 7 µs unverified read per call (docs/benchmarks.md,
// findings 6 and 21). On the ground floor, beside audit.ts, its one caller there.
import { isUtf8 } from 'node:buffer';

/**
 * A compact JWS: three base64url segments, the signature possibly empty, so that the verifier refuses
 * an "alg: none" token as jwt_alg rather than as malformed.
 */
export const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Whether a segment of base64url characters ends in a dangling character: one character cannot end
 * a byte, and Node's decoder drops it, so the segment would decode like a shorter one (a second
 * spelling of the same bytes). A JWT decoder refuses it.
 */
export const hasDanglingBase64urlChar = (segment: string): boolean => segment.length % 4 === 1;

/**
 * One base64url segment of a token that matched COMPACT_JWS, as a JSON object; throws when it is
 * not one. COMPACT_JWS allows only base64url characters; what Node's decoder would still let
 * through, a JWT decoder refuses here: a dangling last character and bytes that are not UTF-8
 * (Node turns them into U+FFFD).
 */
export function decodeJwtSegment(segment: string): Record<string, unknown> {
  if (hasDanglingBase64urlChar(segment)) throw new TypeError('not base64url');
  const bytes = Buffer.from(segment, 'base64url');
  if (!isUtf8(bytes)) throw new TypeError('not UTF-8');
  const value: unknown = JSON.parse(bytes.toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError('not a JSON object');
  return value as Record<string, unknown>;
}

/** The payload of a compact JWS with a signature, unverified; undefined when it is not one. */
export function unverifiedJwtPayload(token: string): Record<string, unknown> | undefined {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  // A signature is required here: the tokens read this way are the API server's, never unsigned.
  if (second < 0 || second === token.length - 1 || !COMPACT_JWS.test(token)) return undefined;
  try {
    return decodeJwtSegment(token.slice(first + 1, second));
  } catch {
    return undefined;
  }
}
