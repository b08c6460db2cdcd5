// The token verifier against a real local OIDC issuer (discovery + JWKS over HTTP): every refusal
// reason, the JWKS cache under key rotation and outage, and single use. The clock is injected.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import {
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  webcrypto,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startOidcIssuer, type OidcIssuer } from '../../../test/support/oidc-issuer.js';
import { createTokenVerifier, type TokenVerifierOptions } from '../../../src/broker/auth/token-verifier.js';
import { BrokerError } from '../../../src/shared/errors.js';
import type { TokenVerifier } from '../../../src/broker/types.js';

const AUDIENCE = 'k8s-ephemeral-access';
let issuer: OidcIssuer;
let otherIssuer: OidcIssuer;
let offsetMs = 0;
const shiftedNow = () => Date.now() + offsetMs;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  otherIssuer = await startOidcIssuer();
});
afterAll(async () => {
  await issuer.close();
  await otherIssuer.close();
});
beforeEach(() => {
  offsetMs = 0;
  issuer.setJwksAvailable(true);
});

function verifier(overrides: Partial<TokenVerifierOptions> = {}): TokenVerifier {
  return createTokenVerifier({
    issuers: [{ issuer: issuer.issuer }],
    audience: AUDIENCE,
    now: shiftedNow,
    ...overrides,
  });
}

async function refusal(v: TokenVerifier, jwt: string): Promise<{ code: string; reason: string }> {
  try {
    await v.verify(jwt);
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    const { code, reason } = err as BrokerError;
    return { code, reason };
  }
  throw new Error('token was accepted');
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function payload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    ...issuer.claims,
    jti: randomUUID(),
    iss: issuer.issuer,
    aud: AUDIENCE,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    ...overrides,
  };
}

/**
 * Signs any header and payload with the issuer's real RS256 key, bypassing jose's own checks; a
 * string payload is signed as written (JSON that JSON.stringify would never produce).
 */
async function signRaw(
  header: Record<string, unknown>,
  body: Record<string, unknown> | string,
): Promise<string> {
  const encodedBody = typeof body === 'string' ? Buffer.from(body).toString('base64url') : b64(body);
  const input = `${b64(header)}.${encodedBody}`;
  const signature = await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', issuer.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

describe('a valid token', () => {
  test('is accepted and its GitHub claims are returned', async () => {
    const claims = await verifier().verify(await issuer.sign());
    expect(claims).toMatchObject({
      iss: issuer.issuer,
      repository_id: '123456789',
      repository_owner_id: '987654',
      ref: 'refs/heads/main',
      event_name: 'push',
    });
  });

  test('is accepted when aud is a list that contains the broker audience', async () => {
    await expect(
      verifier().verify(await issuer.sign({}, { audience: ['other', AUDIENCE] })),
    ).resolves.toBeDefined();
  });

  test('is accepted without a typ header', async () => {
    await expect(
      verifier().verify(await signRaw({ alg: 'RS256', kid: issuer.kid }, payload())),
    ).resolves.toBeDefined();
  });
});

describe('malformed and oversized tokens are bad requests, refused before any key lookup', () => {
  test.each([
    ['empty', ''],
    ['one part', 'abc'],
    ['two parts', 'abc.def'],
    ['four parts', 'a.b.c.d'],
    ['not base64url JSON', 'eyJhbGciOiJSUzI1NiJ9.%%%.abc'],
    ['header not JSON', `${Buffer.from('nope').toString('base64url')}.${b64({})}.sig`],
  ])('%s', async (_name, jwt) => {
    const before = issuer.jwksRequests();
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_BAD_REQUEST', reason: 'jwt_malformed' });
    expect(issuer.jwksRequests()).toBe(before);
  });

  test('a token over 8 KiB is refused as oversized without fetching keys', async () => {
    const big = await issuer.sign({ padding: 'x'.repeat(9000) });
    const before = issuer.jwksRequests();
    expect(await refusal(verifier(), big)).toEqual({ code: 'ERR_BAD_REQUEST', reason: 'jwt_oversized' });
    expect(issuer.jwksRequests()).toBe(before);
  });

  test('a payload that is JSON but not an object is refused', async () => {
    const input = `${b64({ alg: 'RS256', kid: issuer.kid })}.${b64(['not', 'an', 'object'])}`;
    expect((await refusal(verifier(), `${input}.abc`)).code).toBe('ERR_BAD_REQUEST');
  });
});

describe('signature and algorithm', () => {
  test('a tampered payload fails the signature check', async () => {
    const [h, , s] = (await issuer.sign()).split('.');
    const forged = `${h}.${b64(payload({ repository_id: '1' }))}.${s}`;
    expect(await refusal(verifier(), forged)).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_signature',
    });
  });

  test('alg none is refused', async () => {
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload())}.`;
    expect(await refusal(verifier(), none)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_alg' });
  });

  test('HS256 keyed with the public key bytes (algorithm confusion) is refused', async () => {
    const pem = createPublicKey({ key: issuer.publicJwk as JsonWebKey, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: issuer.kid })}.${b64(payload())}`;
    const mac = createHmac('sha256', pem).update(input).digest('base64url');
    expect(await refusal(verifier(), `${input}.${mac}`)).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_alg',
    });
  });

  test('another RSA algorithm with the genuine key is refused (allow-list is RS256 only)', async () => {
    const ps256 = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'PS256', kid: issuer.kid, typ: 'JWT' })
      .sign((await generateKeyPair('PS256')).privateKey);
    expect(await refusal(verifier(), ps256)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_alg' });
  });

  test('a token signed by a key that is not in the JWKS has an unknown kid', async () => {
    const attacker = await generateKeyPair('RS256');
    const jwt = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'RS256', kid: 'attacker-kid', typ: 'JWT' })
      .sign(attacker.privateKey);
    expect(await refusal(verifier(), jwt)).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_unknown_kid',
    });
  });

  test("a token signed by another key under the issuer's kid fails the signature check", async () => {
    const attacker = await generateKeyPair('RS256');
    const jwt = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'RS256', kid: issuer.kid, typ: 'JWT' })
      .sign(attacker.privateKey);
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_signature' });
  });
});

describe("the issuer's RSA key and the signature's encoding", () => {
  const rsa = (modulusLength: number) => generateKeyPairSync('rsa', { modulusLength });

  /** A verifier to which the issuer's JWKS holds `publicKey` under the issuer's kid, instead of its own. */
  function verifierTrusting(publicKey: KeyObject): TokenVerifier {
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: issuer.kid, alg: 'RS256', use: 'sig' };
    const { fetch } = rewritingFetch((_url, body) => ('keys' in body ? { keys: [jwk] } : body));
    return verifier({ fetchImpl: fetch });
  }

  /** A token of the issuer signed with node:crypto by `privateKey`. */
  function signedBy(privateKey: KeyObject): string {
    const input = `${b64({ alg: 'RS256', kid: issuer.kid, typ: 'JWT' })}.${b64(payload())}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  }

  test("an issuer's RSA key of 1024 bits is not used (its key set is unusable), though the signature by it is valid; 3072 bits verify", async () => {
    const weak = rsa(1024);
    expect(await refusal(verifierTrusting(weak.publicKey), signedBy(weak.privateKey))).toEqual({
      code: 'ERR_UNAVAILABLE',
      reason: 'jwks_unavailable',
    });
    const strong = rsa(3072);
    await expect(
      verifierTrusting(strong.publicKey).verify(signedBy(strong.privateKey)),
    ).resolves.toBeDefined();
  });

  test.each([
    ['a private part without the rest of a private key', { d: 'AQAB' }],
    ['no modulus (JSON drops the undefined)', { n: undefined }],
  ])(
    "an issuer's key that cannot be imported (%s) is the issuer's fault: 503, not an unexplained error",
    async (_what, change) => {
      const key = rsa(2048);
      const jwk = { ...key.publicKey.export({ format: 'jwk' }), kid: issuer.kid, alg: 'RS256', use: 'sig' };
      const { fetch } = rewritingFetch((_url, body) =>
        'keys' in body ? { keys: [{ ...jwk, ...change }] } : body,
      );
      const v = verifier({ fetchImpl: fetch });
      const err = await v.verify(signedBy(key.privateKey)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BrokerError);
      expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE', reason: 'jwks_unavailable' });
      expect((err as Error).message).toMatch(/cannot be imported \(\w+Error\)/);
    },
  );

  test('a signature with a dangling last character is malformed, though Node decodes it to the valid bytes', async () => {
    // 384 bytes are 512 base64url characters: one more is a fifth of a quad, which Node drops.
    const key = rsa(3072);
    const jwt = signedBy(key.privateKey);
    const signature = jwt.slice(jwt.lastIndexOf('.') + 1);
    expect(Buffer.from(`${signature}A`, 'base64url')).toEqual(Buffer.from(signature, 'base64url'));
    const v = verifierTrusting(key.publicKey);
    expect(await refusal(v, `${jwt}A`)).toEqual({ code: 'ERR_BAD_REQUEST', reason: 'jwt_malformed' });
    await expect(v.verify(jwt)).resolves.toBeDefined();
  });

  test('an empty or truncated signature fails the signature check', async () => {
    const jwt = await issuer.sign();
    const unsigned = jwt.slice(0, jwt.lastIndexOf('.') + 1);
    expect(await refusal(verifier(), unsigned)).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_signature',
    });
    expect(await refusal(verifier(), jwt.slice(0, -4))).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_signature',
    });
  });
});

describe('header parameters that would pick the key or change processing are refused', () => {
  test.each([
    ['jku', { jku: 'https://attacker.example/jwks' }],
    ['x5u', { x5u: 'https://attacker.example/cert.pem' }],
    ['x5c', { x5c: ['MIIB'] }],
    ['crit', { crit: ['exp'] }],
    // The signature would cover the payload's text, not the claims decoded from it. The first row
    // meets the crit check first; the others only the b64 check (jose ignores a b64 not in crit).
    ['b64 false, made critical (RFC 7797 unencoded payload)', { b64: false, crit: ['b64'] }],
    ['b64 false, not critical', { b64: false }],
    ['b64 true', { b64: true }],
    ['typ other than JWT', { typ: 'at+jwt' }],
  ])('%s', async (_name, extra) => {
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid, typ: 'JWT', ...extra }, payload());
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_header' });
  });

  test('an embedded jwk naming the attacker key is refused, even with the genuine kid', async () => {
    const attacker = await generateKeyPair('RS256', { extractable: true });
    const jwk = await exportJWK(attacker.publicKey);
    const jwt = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'RS256', kid: issuer.kid, typ: 'JWT', jwk })
      .sign(attacker.privateKey);
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_header' });
  });

  test('a token without kid is refused', async () => {
    const jwt = await signRaw({ alg: 'RS256', typ: 'JWT' }, payload());
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_header' });
  });
});

describe('issuer and audience', () => {
  test('a token from an issuer that is not configured is refused', async () => {
    expect(await refusal(verifier(), await otherIssuer.sign())).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_issuer',
    });
  });

  test('iss must match exactly (a trailing slash or a changed case is another issuer)', async () => {
    for (const iss of [`${issuer.issuer}/`, issuer.issuer.toUpperCase(), `${issuer.issuer}/enterprise`]) {
      expect((await refusal(verifier(), await issuer.sign({}, { issuer: iss }))).reason).toBe('jwt_issuer');
    }
  });

  test("a token claiming a trusted iss but signed by another issuer's key is refused", async () => {
    const jwt = await otherIssuer.sign({}, { issuer: issuer.issuer });
    expect((await refusal(verifier(), jwt)).reason).toBe('jwt_unknown_kid');
  });

  test('tokens for another audience (e.g. the GitHub default or a cloud provider) are refused', async () => {
    for (const audience of ['https://github.com/octo-org', 'sts.amazonaws.com', `${AUDIENCE}-other`]) {
      expect(await refusal(verifier(), await issuer.sign({}, { audience }))).toEqual({
        code: 'ERR_UNAUTHENTICATED',
        reason: 'jwt_audience',
      });
    }
  });

  test.each([
    ['no aud', { aud: undefined }],
    ['a list without the broker audience', { aud: ['other', `${AUDIENCE}-other`] }],
    ['a number', { aud: 1 }],
  ])('aud as %s is refused', async (_name, overrides) => {
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid }, payload(overrides));
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_audience' });
  });

  test('each of several configured issuers is accepted with its own keys', async () => {
    const v = verifier({ issuers: [{ issuer: issuer.issuer }, { issuer: otherIssuer.issuer }] });
    await expect(v.verify(await issuer.sign())).resolves.toMatchObject({ iss: issuer.issuer });
    await expect(v.verify(await otherIssuer.sign())).resolves.toMatchObject({ iss: otherIssuer.issuer });
  });
});

describe('time claims, with the default 30 s leeway', () => {
  test('an expired token is refused; within the leeway it is accepted', async () => {
    offsetMs = 320_000; // exp is now+300 s: 20 s past exp is inside the leeway
    await expect(verifier().verify(await issuer.sign())).resolves.toBeDefined();
    offsetMs = 340_000;
    expect(await refusal(verifier(), await issuer.sign())).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_expired',
    });
  });

  test('a token whose nbf is in the future is refused; within the leeway it is accepted', async () => {
    await expect(verifier().verify(await issuer.sign({}, { notBefore: 10 }))).resolves.toBeDefined();
    expect(await refusal(verifier(), await issuer.sign({}, { notBefore: 120 }))).toEqual({
      code: 'ERR_UNAUTHENTICATED',
      reason: 'jwt_not_yet_valid',
    });
  });

  test('a token issued in the future is refused', async () => {
    expect((await refusal(verifier(), await issuer.sign({}, { issuedAt: 120, notBefore: -5 }))).reason).toBe(
      'jwt_not_yet_valid',
    );
  });

  test('nbf far before iat (GitHub backdates nbf ~10 min) is accepted', async () => {
    await expect(verifier().verify(await issuer.sign({}, { notBefore: -600 }))).resolves.toBeDefined();
  });

  test('a custom leeway is honoured', async () => {
    offsetMs = 310_000;
    expect((await refusal(verifier({ leewaySeconds: 0 }), await issuer.sign())).reason).toBe('jwt_expired');
  });

  test('a token minted to live longer than an hour is refused', async () => {
    expect((await refusal(verifier(), await issuer.sign({}, { expiresIn: 7200 }))).reason).toBe(
      'jwt_lifetime',
    );
  });

  test.each(['exp', 'iat'])('a token without %s is refused', async (claim) => {
    const body = payload();
    delete body[claim];
    expect((await refusal(verifier(), await signRaw({ alg: 'RS256', kid: issuer.kid }, body))).reason).toBe(
      'jwt_claims',
    );
  });

  test.each([
    ['exp as a string', { exp: String(Math.floor(Date.now() / 1000) + 300) }],
    ['iat as a string', { iat: String(Math.floor(Date.now() / 1000)) }],
    ['nbf as a string', { nbf: '0' }],
    ['nbf as null', { nbf: null }],
  ])('%s is refused', async (_name, overrides) => {
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid }, payload(overrides));
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_claims' });
  });

  test.each(['exp', 'iat', 'nbf'])('%s that JSON parses to Infinity (1e400) is refused', async (claim) => {
    const json = JSON.stringify(payload({ [claim]: 0 })).replace(`"${claim}":0`, `"${claim}":1e400`);
    expect(json).toContain('1e400');
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid }, json);
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_claims' });
  });
});

describe('GitHub claims must have the expected types', () => {
  test.each([
    ['missing repository_id', { repository_id: undefined }],
    ['missing repository_owner_id', { repository_owner_id: undefined }],
    ['missing jti', { jti: undefined }],
    ['missing run_id', { run_id: undefined }],
    ['missing event_name', { event_name: undefined }],
    ['numeric repository_id', { repository_id: 123456789 }],
    ['numeric run_attempt', { run_attempt: 1 }],
    ['repository_owner_id as a list', { repository_owner_id: ['987654'] }],
    ['ref as an object', { ref: { value: 'refs/heads/main' } }],
    ['environment as a list', { environment: ['production'] }],
    ['repository_id with a leading zero', { repository_id: '0123456789' }],
    ['repository_id with a sign', { repository_id: '+123456789' }],
    ['repository_id not decimal', { repository_id: '12345678a' }],
    ['repository_id in exponent form', { repository_id: '1e9' }],
    ['empty ref', { ref: '' }],
    ['control characters in ref', { ref: 'refs/heads/main\nforged: line' }],
    ['numeric jti', { jti: 42 }],
  ])('%s is refused', async (_name, overrides) => {
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid, typ: 'JWT' }, payload(overrides));
    expect(await refusal(verifier(), jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_claims' });
  });
});

describe('single use', () => {
  test('the same token is accepted once, then refused as replayed', async () => {
    const v = verifier();
    const jwt = await issuer.sign();
    await expect(v.verify(jwt)).resolves.toBeDefined();
    expect(await refusal(v, jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
  });

  test('two concurrent uses of one token: exactly one succeeds', async () => {
    const v = verifier();
    const jwt = await issuer.sign();
    const results = await Promise.allSettled([v.verify(jwt), v.verify(jwt), v.verify(jwt)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect(((r as PromiseRejectedResult).reason as BrokerError).reason).toBe('jwt_replayed');
    }
  });

  test('a different token with a reused jti is refused too', async () => {
    const v = verifier();
    const jti = randomUUID();
    await expect(v.verify(await issuer.sign({ jti }))).resolves.toBeDefined();
    expect((await refusal(v, await issuer.sign({ jti, run_attempt: '2' }))).reason).toBe('jwt_replayed');
  });

  test('a fractional exp is remembered for as long as the exp check passes it', async () => {
    const exp = Math.floor(Date.now() / 1000) + 300.2;
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid }, payload({ exp }));
    // 0.3 s past exp + leeway (30 s), yet within the whole second the exp check compares: it passes.
    // A frozen clock, so that no pause between the two calls can carry them into the next second.
    const at = Math.floor(exp + 30) * 1000 + 500;
    const v = verifier({ now: () => at });
    await expect(v.verify(jwt)).resolves.toBeDefined();
    expect(await refusal(v, jwt)).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
  });

  test.each([
    ['a whole', 300, 330],
    ['a fractional', 300.2, 331],
  ])('%s exp is kept until exp + leeway, rounded up to the second', async (_name, lifetime, keepSeconds) => {
    const now = Math.floor(Date.now() / 1000);
    const kept: number[] = [];
    const replayCache = { markUsed: (_key: string, untilMs: number) => kept.push(untilMs) > 0 };
    const jwt = await signRaw({ alg: 'RS256', kid: issuer.kid }, payload({ iat: now, exp: now + lifetime }));
    await verifier({ replayCache, now: () => now * 1000 }).verify(jwt);
    expect(kept).toEqual([(now + keepSeconds) * 1000]);
  });

  test('a refused attempt does not use up the token', async () => {
    const v = verifier();
    const jwt = await issuer.sign({}, { notBefore: 120 });
    expect((await refusal(v, jwt)).reason).toBe('jwt_not_yet_valid');
    offsetMs = 130_000;
    await expect(v.verify(jwt)).resolves.toBeDefined();
  });
});

describe('JWKS cache', () => {
  test('keys are fetched once and reused', async () => {
    const v = verifier();
    const before = issuer.jwksRequests();
    await v.verify(await issuer.sign());
    await v.verify(await issuer.sign());
    await v.verify(await issuer.sign());
    expect(issuer.jwksRequests() - before).toBe(1);
  });

  test('a rotated key is picked up by one refetch; unknown kids within the cooldown fetch nothing', async () => {
    const local = await startOidcIssuer();
    try {
      const v = createTokenVerifier({
        issuers: [{ issuer: local.issuer }],
        audience: AUDIENCE,
        now: shiftedNow,
      });
      await v.verify(await local.sign());
      await local.rotateKey();
      offsetMs = 31_000; // past the 30 s cooldown since the first fetch
      const rotated = await local.sign();
      await expect(v.verify(rotated)).resolves.toBeDefined();
      expect(local.jwksRequests()).toBe(2);

      // Made-up kids right after a fetch must not make the broker hammer the issuer.
      for (let i = 0; i < 5; i += 1) {
        const jwt = await signRawWith(local, { alg: 'RS256', kid: `made-up-${i}` });
        expect((await refusal(v, jwt)).reason).toBe('jwt_unknown_kid');
      }
      expect(local.jwksRequests()).toBe(2);
    } finally {
      await local.close();
    }
  });

  test('outage with a warm cache: cached keys keep working past their max age', async () => {
    const v = verifier({ jwksCacheMaxAgeMs: 60_000, jwksCooldownMs: 1_000 });
    await v.verify(await issuer.sign());
    issuer.setJwksAvailable(false);
    offsetMs = 90_000; // the cache is stale, a refresh is attempted and fails
    const before = issuer.jwksRequests();
    await expect(v.verify(await issuer.sign())).resolves.toBeDefined();
    expect(issuer.jwksRequests()).toBe(before + 1);
  });

  test('outage with a warm cache: an unknown kid cannot be resolved and is unavailable, not accepted', async () => {
    const v = verifier({ jwksCooldownMs: 1_000 });
    await v.verify(await issuer.sign());
    issuer.setJwksAvailable(false);
    offsetMs = 2_000;
    const jwt = await signRaw({ alg: 'RS256', kid: 'unknown-during-outage' }, payload());
    expect(await refusal(v, jwt)).toEqual({ code: 'ERR_UNAVAILABLE', reason: 'jwks_unavailable' });
  });

  test('outage with a cold cache: unavailable, retried only after the cooldown, then recovers', async () => {
    issuer.setJwksAvailable(false);
    const v = verifier({ jwksCooldownMs: 10_000 });
    const before = issuer.jwksRequests();
    expect(await refusal(v, await issuer.sign())).toEqual({
      code: 'ERR_UNAVAILABLE',
      reason: 'jwks_unavailable',
    });
    expect(await refusal(v, await issuer.sign())).toEqual({
      code: 'ERR_UNAVAILABLE',
      reason: 'jwks_unavailable',
    });
    expect(issuer.jwksRequests()).toBe(before + 1);
    issuer.setJwksAvailable(true);
    offsetMs = 11_000;
    await expect(v.verify(await issuer.sign())).resolves.toBeDefined();
  });

  test('a discovery document naming a different issuer is not trusted', async () => {
    const fetchImpl = rewritingFetch((url, body) =>
      url.endsWith('/openid-configuration') ? { ...body, issuer: 'https://attacker.example' } : body,
    );
    expect(await refusal(verifier({ fetchImpl: fetchImpl.fetch }), await issuer.sign())).toEqual({
      code: 'ERR_UNAVAILABLE',
      reason: 'jwks_unavailable',
    });
  });

  test('a jwks_uri over plain http to a non-loopback host is never fetched', async () => {
    const fetchImpl = rewritingFetch((url, body) =>
      url.endsWith('/openid-configuration') ? { ...body, jwks_uri: 'http://keys.example.com/jwks' } : body,
    );
    expect((await refusal(verifier({ fetchImpl: fetchImpl.fetch }), await issuer.sign())).reason).toBe(
      'jwks_unavailable',
    );
    expect(fetchImpl.urls.some((u) => u.includes('keys.example.com'))).toBe(false);
  });
});

describe('options are checked when the verifier is created', () => {
  const base = { issuers: [{ issuer: 'https://token.actions.githubusercontent.com' }], audience: AUDIENCE };
  test('valid production issuers are accepted without any network call', () => {
    expect(() =>
      createTokenVerifier({
        ...base,
        issuers: [
          { issuer: 'https://token.actions.githubusercontent.com' },
          { issuer: 'https://token.actions.githubusercontent.com/octo-enterprise' },
          { issuer: 'https://ghes.example.com/_services/token' },
        ],
      }),
    ).not.toThrow();
  });
  test.each([
    ['leeway above 60 s', { leewaySeconds: 61 }],
    ['negative leeway', { leewaySeconds: -1 }],
    ['no issuers', { issuers: [] }],
    ['http issuer off loopback', { issuers: [{ issuer: 'http://token.example.com' }] }],
    ['issuer with trailing slash', { issuers: [{ issuer: 'https://token.actions.githubusercontent.com/' }] }],
    ['issuer with a query', { issuers: [{ issuer: 'https://token.example.com?x=1' }] }],
    ['empty audience', { audience: '' }],
  ])('%s is refused', (_name, overrides) => {
    expect(() => createTokenVerifier({ ...base, ...overrides })).toThrow(TypeError);
  });
});

async function signRawWith(local: OidcIssuer, header: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body = {
    ...local.claims,
    jti: randomUUID(),
    iss: local.issuer,
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
  };
  const input = `${b64(header)}.${b64(body)}`;
  const signature = await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', local.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

/** A fetch that lets a test rewrite JSON answers and records every URL asked for. */
function rewritingFetch(rewrite: (url: string, body: Record<string, unknown>) => Record<string, unknown>) {
  const urls: string[] = [];
  const impl = async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    urls.push(url);
    const response = await fetch(input, init);
    const body = rewrite(url, (await response.json()) as Record<string, unknown>);
    return new Response(JSON.stringify(body), {
      status: response.status,
      headers: { 'content-type': 'application/json' },
    });
  };
  return { fetch: impl as typeof fetch, urls };
}
