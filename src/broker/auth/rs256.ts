// The RS256 signature of a compact JWS (RFC 7515 §5.2: RSASSA-PKCS1-v1_5 with SHA-256 over the
// ASCII text "<header>.<payload>"), checked with node:crypto's one-shot verify: OpenSSL, on the
// calling thread. jose's compactVerify checks it through WebCrypto, which hands every check to
// libuv's thread pool and its result back to the event loop; on two cores shared with the API
// server that hand-off cost the broker more CPU than the check itself (docs/benchmarks.md,
// finding 28). The key still comes from jose: the issuer's JWKS, imported for the header's alg.
import { KeyObject, verify, type webcrypto } from 'node:crypto';
import type { CryptoKey } from 'jose';
import { BrokerError } from '../../shared/errors.js';
import { hasDanglingBase64urlChar } from '../unverified-jwt.js';

/** RFC 7518 §3.3: RSA keys for RS256 are at least 2048 bits (jose refuses smaller ones too). */
export const MIN_RSA_MODULUS_BITS = 2048;

/** The KeyObject of each CryptoKey already used: converting one costs more than a check. */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();

/** An RSA public key of at least MIN_RSA_MODULUS_BITS, imported for RSASSA-PKCS1-v1_5 with SHA-256. */
function rs256KeyOf(key: CryptoKey): KeyObject {
  const known = keyObjects.get(key);
  if (known) return known;
  const algorithm = key.algorithm as Partial<webcrypto.RsaHashedKeyAlgorithm>;
  const usable =
    key.usages.includes('verify') &&
    algorithm.name === 'RSASSA-PKCS1-v1_5' &&
    algorithm.hash?.name === 'SHA-256' &&
    (algorithm.modulusLength ?? 0) >= MIN_RSA_MODULUS_BITS;
  // The issuer's key set is at fault, not the token: what a JWKS that cannot be used gets (503).
  if (!usable)
    throw new BrokerError(
      'ERR_UNAVAILABLE',
      'jwks_unavailable',
      `the issuer's key for this kid is not an RS256 verification key of at least ${MIN_RSA_MODULUS_BITS} bits`,
    );
  const keyObject = KeyObject.from(key as webcrypto.CryptoKey);
  keyObjects.set(key, keyObject);
  return keyObject;
}

/**
 * Whether the compact JWS `jwt` (three base64url segments: COMPACT_JWS) carries a valid RS256
 * signature by `key` over its first two segments. Not valid: a signature segment with a dangling
 * last character, which Node's decoder would drop (a second spelling of a signed token; the
 * verifier's pre-check refuses it first, as malformed), and anything OpenSSL throws on.
 */
export function hasValidRs256Signature(jwt: string, key: CryptoKey): boolean {
  const keyObject = rs256KeyOf(key);
  const dot = jwt.lastIndexOf('.');
  const signature = jwt.slice(dot + 1);
  if (hasDanglingBase64urlChar(signature)) return false;
  try {
    return verify(
      'sha256',
      Buffer.from(jwt.slice(0, dot), 'latin1'),
      keyObject,
      Buffer.from(signature, 'base64url'),
    );
  } catch {
    return false;
  }
}
