// Verifies a GitHub Actions OIDC token: the first step of every exchange and revocation.
// jose imports the issuer's keys and node:crypto checks the signature (rs256.ts); this module
// decides what is acceptable: RS256 only, keys only from
// the configured issuer's JWKS (never from the token: jku/x5u/jwk/x5c are refused), no crit or b64,
// exact iss, our audience, bounded clock leeway, a bounded lifetime, the GitHub claims with the
// right types, and every token used once.
import type { CryptoKey, FlattenedJWSInput } from 'jose';
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import type { TokenVerifier, VerifiedClaims } from '../types.js';
import { checkGitHubClaims } from './github-claims.js';
import { createIssuerKeys, type IssuerKeys } from './issuer-keys.js';
import { issuerUrlProblem, type IssuerConfig } from './issuer-url.js';
import { toBrokerError } from './jose-errors.js';
import { checkRegisteredClaims } from './registered-claims.js';
import { COMPACT_JWS, decodeJwtSegment, hasDanglingBase64urlChar } from '../unverified-jwt.js';
import { createReplayCache, type ReplayCache } from './replay-cache.js';
import { hasValidRs256Signature } from './rs256.js';

export type { IssuerConfig } from './issuer-url.js';

export interface TokenVerifierOptions {
  issuers: IssuerConfig[];
  audience: string;
  /** Clock skew allowed on exp/nbf/iat, in seconds. Default 30, at most 60. */
  leewaySeconds?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  fetchImpl?: typeof fetch;
  /** Keys older than this are refreshed before use (kept if the refresh fails). Default 10 min. */
  jwksCacheMaxAgeMs?: number;
  /** Minimum time between JWKS fetch attempts, e.g. for unknown kids. Default 30 s. */
  jwksCooldownMs?: number;
  /** Timeout of one discovery or JWKS request. Default 5 s. */
  jwksTimeoutMs?: number;
  replayCache?: ReplayCache;
}

export const DEFAULT_LEEWAY_SECONDS = 30;
export const MAX_LEEWAY_SECONDS = 60;
/** GitHub tokens are about 1.2 KiB; 8 KiB leaves room and is checked before any parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** Header parameters that would let a token name its own key: never honoured, always refused. */
const KEY_SOURCE_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

function checkOptions(options: TokenVerifierOptions): void {
  if (!Array.isArray(options.issuers) || options.issuers.length === 0)
    throw new TypeError('"issuers" option must list at least one issuer');
  for (const { issuer } of options.issuers) {
    const problem = typeof issuer === 'string' ? issuerUrlProblem(issuer) : 'must be a string';
    if (problem) throw new TypeError(`issuer ${JSON.stringify(issuer)} ${problem}`);
  }
  if (typeof options.audience !== 'string' || options.audience.length === 0)
    throw new TypeError('"audience" option must be a non-empty string');
  const leeway = options.leewaySeconds;
  if (leeway !== undefined && (!Number.isInteger(leeway) || leeway < 0 || leeway > MAX_LEEWAY_SECONDS))
    throw new TypeError(`"leewaySeconds" option must be a whole number from 0 to ${MAX_LEEWAY_SECONDS}`);
  for (const name of ['jwksCacheMaxAgeMs', 'jwksCooldownMs', 'jwksTimeoutMs'] as const) {
    const value = options[name];
    if (value !== undefined && (!Number.isFinite(value) || value < 0))
      throw new TypeError(`"${name}" option must be a non-negative number`);
  }
}

function unauthenticated(reason: Reason, message: string): BrokerError {
  return new BrokerError('ERR_UNAUTHENTICATED', reason, message);
}

/** Each configured issuer's JWKS cache, by issuer URL. */
function issuerKeysOf(options: TokenVerifierOptions, now: () => number): Map<string, IssuerKeys> {
  return new Map(
    options.issuers.map(({ issuer }) => [
      issuer,
      createIssuerKeys({
        issuer,
        now,
        fetchImpl: options.fetchImpl ?? fetch,
        maxAgeMs: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
        cooldownMs: options.jwksCooldownMs ?? 30_000,
        timeoutMs: options.jwksTimeoutMs ?? 5_000,
      }),
    ]),
  );
}

interface Prechecked {
  issuer: string;
  keys: IssuerKeys;
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** The token's three segments, as jose's key lookup takes them. */
  segments: FlattenedJWSInput;
}

/** Cheap structural checks, before any key is looked up or any network call is made. */
function precheck(jwt: string, keysByIssuer: Map<string, IssuerKeys>): Prechecked {
  if (typeof jwt !== 'string' || jwt.length === 0)
    throw new BrokerError('ERR_BAD_REQUEST', 'jwt_malformed', 'no token');
  if (jwt.length > MAX_TOKEN_BYTES)
    throw new BrokerError('ERR_BAD_REQUEST', 'jwt_oversized', `token longer than ${MAX_TOKEN_BYTES} bytes`);
  if (!COMPACT_JWS.test(jwt)) throw new BrokerError('ERR_BAD_REQUEST', 'jwt_malformed', 'not a compact JWS');
  const [h, p, signature] = jwt.split('.') as [string, string, string];
  let header: Record<string, unknown>;
  let payload: Record<string, unknown>;
  try {
    header = decodeJwtSegment(h);
    payload = decodeJwtSegment(p); // what is signed: checked once the signature is verified
  } catch (err) {
    throw new BrokerError('ERR_BAD_REQUEST', 'jwt_malformed', 'header or payload is not base64url JSON', {
      cause: err,
    });
  }
  // A signature with a dangling character would verify as if it were not there (rs256.ts).
  if (hasDanglingBase64urlChar(signature))
    throw new BrokerError('ERR_BAD_REQUEST', 'jwt_malformed', 'signature is not base64url');
  // alg first: "none" and HS256 (an HMAC keyed with our public key) die here, before any key use.
  if (header.alg !== 'RS256')
    throw unauthenticated('jwt_alg', `alg ${JSON.stringify(header.alg)} is not allowed`);
  if (header.typ !== undefined && header.typ !== 'JWT') throw unauthenticated('jwt_header', 'typ is not JWT');
  if (header.crit !== undefined)
    throw unauthenticated('jwt_header', 'crit header parameters are not supported');
  // An unencoded payload (RFC 7797, b64: false) has its signature cover the segment's text, not
  // the claims decoded from it, which are what registered-claims checks: refused, with or
  // without the crit that would make jose honour it.
  if (header.b64 !== undefined) throw unauthenticated('jwt_header', 'b64 header parameter is refused');
  for (const name of KEY_SOURCE_HEADERS) {
    if (header[name] !== undefined)
      throw unauthenticated(
        'jwt_header',
        `${name} header is refused (keys come only from the issuer's JWKS)`,
      );
  }
  if (typeof header.kid !== 'string' || header.kid.length === 0)
    throw unauthenticated('jwt_header', 'no kid');
  // The unverified iss only selects which issuer's keys to try; the claims are checked once the
  // signature over them is.
  const issuer = payload.iss;
  const keys = typeof issuer === 'string' ? keysByIssuer.get(issuer) : undefined;
  if (typeof issuer !== 'string' || !keys) throw unauthenticated('jwt_issuer', 'issuer is not trusted');
  return { issuer, keys, header, payload, segments: { protected: h, payload: p, signature } };
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  checkOptions(options);
  const now = options.now ?? Date.now;
  const leeway = options.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS;
  const audience = options.audience;
  const replayCache = options.replayCache ?? createReplayCache({ now });
  const keysByIssuer = issuerKeysOf(options, now);

  return {
    async verify(jwt) {
      const { issuer, keys, header, payload, segments } = precheck(jwt, keysByIssuer);
      // The key itself when it is ready (the usual case), without an await.
      let key: CryptoKey | undefined = keys.readyKey(header);
      if (!key) {
        try {
          key = await keys.getKey(header, segments);
        } catch (err) {
          throw toBrokerError(err);
        }
      }
      if (!hasValidRs256Signature(jwt, key))
        throw unauthenticated('jwt_signature', 'signature verification failed');
      // The clock is read once the signature is checked: a token is judged when it is accepted,
      // even after a JWKS fetch on the way, and so its replay entry is not written already expired.
      const nowSeconds = Math.floor(now() / 1000);
      const { exp } = checkRegisteredClaims(payload, { issuer, audience, leewaySeconds: leeway, nowSeconds });
      const claims: VerifiedClaims = checkGitHubClaims(payload);

      // Last, so a token that fails any check does not use up its jti. Kept for as long as the exp
      // check would pass it: it compares whole seconds, so exp + leeway rounded up to a second (exp
      // may be fractional; the leeway is whole, so the sum needs no rounding of its own).
      if (!replayCache.markUsed(`${issuer}\n${claims.jti}`, (Math.ceil(exp) + leeway) * 1000))
        throw unauthenticated('jwt_replayed', 'token already used');
      return claims;
    },
  };
}
