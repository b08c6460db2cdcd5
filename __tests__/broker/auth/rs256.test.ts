// The RS256 check on its own: only an RS256 verification key of at least 2048 bits is used, and the
// signature must cover exactly the token's first two segments.
import { describe, expect, test } from '@jest/globals';
import { generateKeyPairSync, sign, webcrypto } from 'node:crypto';
import { hasValidRs256Signature } from '../../../src/broker/auth/rs256.js';
import { BrokerError } from '../../../src/shared/errors.js';

const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = pair.publicKey.export({ format: 'jwk' });
const input = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}`;
const jwt = `${input}.${sign('sha256', Buffer.from(input), pair.privateKey).toString('base64url')}`;

const importPublic = (algorithm: webcrypto.RsaHashedImportParams) =>
  webcrypto.subtle.importKey('jwk', jwk, algorithm, false, ['verify']);
const rs256 = () => importPublic({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });

describe('hasValidRs256Signature', () => {
  test('a signature over the first two segments by the key is valid; over other text it is not', async () => {
    const key = await rs256();
    expect(hasValidRs256Signature(jwt, key)).toBe(true);
    const other = `${input}e`;
    const forged = `${other}.${sign('sha256', Buffer.from(input), pair.privateKey).toString('base64url')}`;
    expect(hasValidRs256Signature(forged, key)).toBe(false);
  });

  test('a signature with a dangling last character is invalid, though Node decodes it to the valid bytes', async () => {
    // 384 bytes are 512 base64url characters: one more is a fifth of a quad, which Node drops.
    const big = generateKeyPairSync('rsa', { modulusLength: 3072 });
    const signed = `${input}.${sign('sha256', Buffer.from(input), big.privateKey).toString('base64url')}`;
    const key = await webcrypto.subtle.importKey(
      'jwk',
      big.publicKey.export({ format: 'jwk' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    expect(hasValidRs256Signature(signed, key)).toBe(true);
    expect(hasValidRs256Signature(`${signed}A`, key)).toBe(false);
  });

  test.each([
    ['SHA-384', () => importPublic({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' })],
    ['RSA-PSS', () => importPublic({ name: 'RSA-PSS', hash: 'SHA-256' })],
    [
      'a private key',
      () =>
        webcrypto.subtle.importKey(
          'jwk',
          pair.privateKey.export({ format: 'jwk' }),
          { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
          false,
          ['sign'],
        ),
    ],
  ])('a key imported for %s is refused, not used', async (_name, importKey) => {
    const key = await importKey();
    let thrown: unknown;
    try {
      hasValidRs256Signature(jwt, key);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(BrokerError);
    expect(thrown).toMatchObject({ code: 'ERR_UNAVAILABLE', reason: 'jwks_unavailable' });
    expect((thrown as Error).message).toMatch(/not an RS256 verification key/);
  });
});
