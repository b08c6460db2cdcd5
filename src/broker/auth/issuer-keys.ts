// The signing keys of one trusted issuer: JWKS URL from OIDC discovery, keys cached in memory.
// Own wrapper around jose's createLocalJWKSet (instead of createRemoteJWKSet) for three reasons:
// the time source is injectable, an outage keeps the last good keys working past their max age
// ("serve stale"), and every fetch attempt (successful or not) is rate-limited by one cooldown, so
// tokens with made-up kids cannot make the broker hammer the issuer.
import {
  createLocalJWKSet,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import { BrokerError } from '../../shared/errors.js';
import { fetchJson } from './fetch-json.js';
import { isTrustedFetchUrl } from './issuer-url.js';

export interface IssuerKeysOptions {
  issuer: string;
  fetchImpl: typeof fetch;
  now: () => number;
  /** After this age the keys are refreshed before use; if that fails, the old keys keep working. */
  maxAgeMs: number;
  /** Minimum time between two fetch attempts (after a success or a failure). */
  cooldownMs: number;
  timeoutMs: number;
}

export interface IssuerKeys {
  /** jose key resolver: the key for this token's header (alg, kid). */
  getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
  /**
   * The key getKey would resolve at once, without waiting for anything: already resolved from the
   * current keys, which are fresh and not being refetched. Undefined otherwise (then call getKey).
   */
  readyKey(header: { alg?: unknown; kid?: unknown }): CryptoKey | undefined;
}

type KeySet = ReturnType<typeof createLocalJWKSet>;

export function createIssuerKeys(options: IssuerKeysOptions): IssuerKeys {
  const { issuer, fetchImpl, now, maxAgeMs, cooldownMs, timeoutMs } = options;
  let jwksUri: string | undefined;
  let keySet: KeySet | undefined;
  /**
   * Keys already resolved from the current keySet, by alg + kid (all jose's JWKS lookup looks at).
   * Skipping the lookup on every token was worth ~10 % of verification throughput (bench/).
   */
  let resolved = new Map<string, CryptoKey>();
  let fetchedAt = 0;
  let lastAttemptAt: number | undefined;
  /** Whether the last fetch attempt failed: then an unknown kid may be a rotation we could not see. */
  let lastAttemptFailed = false;
  let inflight: Promise<void> | undefined;

  const coolingDown = () => lastAttemptAt !== undefined && now() - lastAttemptAt < cooldownMs;

  async function load(): Promise<void> {
    lastAttemptAt = now();
    try {
      jwksUri ??= await discoverJwksUri(issuer, fetchImpl, timeoutMs);
      const jwks = await fetchJson(jwksUri, fetchImpl, timeoutMs);
      if (!isJwks(jwks)) throw new Error('JWKS is not a {"keys": [...]} document');
      keySet = createLocalJWKSet(jwks);
      resolved = new Map();
      fetchedAt = now();
      lastAttemptFailed = false;
    } catch (err) {
      lastAttemptFailed = true;
      jwksUri = undefined; // rediscover next time: the JWKS location may have moved
      throw new BrokerError(
        'ERR_UNAVAILABLE',
        'jwks_unavailable',
        `cannot fetch the signing keys of ${issuer}`,
        {
          cause: err,
        },
      );
    }
  }

  /** One fetch at a time; concurrent callers share it. */
  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  return {
    readyKey(header) {
      if (inflight || !keySet || now() - fetchedAt >= maxAgeMs || typeof header.kid !== 'string')
        return undefined;
      return resolved.get(`${String(header.alg)}\n${header.kid}`);
    },
    async getKey(header, token) {
      if (inflight) await inflight.catch(() => undefined);
      if (!keySet) {
        if (coolingDown())
          throw new BrokerError(
            'ERR_UNAVAILABLE',
            'jwks_unavailable',
            `signing keys of ${issuer} unavailable (retry after cooldown)`,
          );
        await refresh();
      } else if (now() - fetchedAt >= maxAgeMs && !coolingDown()) {
        // Stale: try to refresh, but keep serving the old keys if the issuer is down.
        await refresh().catch(() => undefined);
      }
      const current = keySet;
      if (!current)
        throw new BrokerError('ERR_UNAVAILABLE', 'jwks_unavailable', `no signing keys for ${issuer}`);
      const cacheKey = typeof header.kid === 'string' ? `${header.alg}\n${header.kid}` : undefined;
      const known = cacheKey === undefined ? undefined : resolved.get(cacheKey);
      if (known) return known;
      try {
        const key = await keyFrom(current, header, token, issuer);
        if (cacheKey !== undefined && current === keySet) resolved.set(cacheKey, key);
        return key;
      } catch (err) {
        // An unknown kid may be a key rotation: refetch once, unless we fetched moments ago.
        if (!isNoMatchingKey(err)) throw err;
        if (coolingDown()) {
          // A fetch moments ago worked: the kid is truly unknown (401). It failed (the stale-key
          // refresh above, or an earlier attempt): the issuer is down and a rotated key cannot be
          // told from a made-up one, so "unavailable, retry later" (503), not "token rejected".
          if (lastAttemptFailed)
            throw new BrokerError(
              'ERR_UNAVAILABLE',
              'jwks_unavailable',
              `kid not in the cached keys of ${issuer}, which cannot be refreshed now`,
            );
          throw err;
        }
        await refresh(); // throws jwks_unavailable when the issuer is down: no cached key matches
        return await keyFrom(keySet ?? current, header, token, issuer);
      }
    },
  };
}

/**
 * The key set's key for this header. jose hands on WebCrypto's DOMException when it cannot import
 * the member (a private key, no modulus): the issuer's fault, like a JWKS that cannot be fetched,
 * so a 503 rather than an unexplained 500. Anything else (a bug) still surfaces as itself.
 */
async function keyFrom(
  set: KeySet,
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
  issuer: string,
): Promise<CryptoKey> {
  try {
    return await set(header, token);
  } catch (err) {
    if (!(err instanceof DOMException)) throw err;
    throw new BrokerError(
      'ERR_UNAVAILABLE',
      'jwks_unavailable',
      `a signing key of ${issuer} cannot be imported (${err.name})`,
      { cause: err },
    );
  }
}

async function discoverJwksUri(issuer: string, fetchImpl: typeof fetch, timeoutMs: number): Promise<string> {
  const doc = await fetchJson(`${issuer}/.well-known/openid-configuration`, fetchImpl, timeoutMs);
  if (typeof doc !== 'object' || doc === null) throw new Error('discovery document is not an object');
  const { issuer: advertised, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be exactly the one we asked.
  if (advertised !== issuer) throw new Error('discovery document names a different issuer');
  if (typeof jwksUri !== 'string') throw new Error('discovery document has no jwks_uri');
  if (!isTrustedFetchUrl(new URL(jwksUri))) throw new Error('jwks_uri is not https');
  return jwksUri;
}

function isJwks(value: unknown): value is JSONWebKeySet {
  return typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys);
}

function isNoMatchingKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ERR_JWKS_NO_MATCHING_KEY';
}
