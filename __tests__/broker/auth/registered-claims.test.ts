// The registered claims on their own, beside the verifier's end-to-end tests: each refusal here has
// no second check behind it (the GitHub claim checks also refuse a missing exp, for example).
import { describe, expect, test } from '@jest/globals';
import {
  checkRegisteredClaims,
  MAX_TOKEN_LIFETIME_SECONDS,
} from '../../../src/broker/auth/registered-claims.js';
import { BrokerError } from '../../../src/shared/errors.js';

const NOW = 1_800_000_000;
const expected = {
  issuer: 'https://issuer.example',
  audience: 'k8s-ephemeral-access',
  leewaySeconds: 30,
  nowSeconds: NOW,
};
const claims = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
  const payload: Record<string, unknown> = {
    iss: expected.issuer,
    aud: expected.audience,
    iat: NOW,
    nbf: NOW - 5,
    exp: NOW + 300,
    ...overrides,
  };
  for (const [name, value] of Object.entries(overrides)) if (value === undefined) delete payload[name];
  return payload;
};

function reasonOf(payload: Record<string, unknown>, options = expected): string {
  try {
    checkRegisteredClaims(payload, options);
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    return (err as BrokerError).reason;
  }
  return 'accepted';
}

describe('checkRegisteredClaims', () => {
  test('a valid payload is accepted and its exp and iat returned', () => {
    expect(checkRegisteredClaims(claims(), expected)).toEqual({ exp: NOW + 300, iat: NOW });
    expect(reasonOf(claims({ nbf: undefined }))).toBe('accepted');
  });

  test.each([
    ['no exp', { exp: undefined }],
    ['no iat', { iat: undefined }],
    ['exp as a string', { exp: String(NOW + 300) }],
    ['iat as a string', { iat: String(NOW) }],
    ['nbf as a string', { nbf: '0' }],
    ['nbf as null', { nbf: null }],
    ['exp as Infinity (JSON 1e400)', { exp: Infinity }],
    ['exp as -Infinity', { exp: -Infinity }],
    ['iat as Infinity', { iat: Infinity }],
    ['iat as -Infinity', { iat: -Infinity }],
    ['nbf as Infinity', { nbf: Infinity }],
    ['nbf as -Infinity', { nbf: -Infinity }],
  ])('%s: jwt_claims', (_name, overrides) => {
    expect(reasonOf(claims(overrides))).toBe('jwt_claims');
  });

  test.each([
    ['another issuer', { iss: 'https://other.example' }, 'jwt_issuer'],
    ['no aud', { aud: undefined }, 'jwt_audience'],
    ['aud of another audience', { aud: 'sts.amazonaws.com' }, 'jwt_audience'],
    ['aud a list without ours', { aud: ['a', 'b'] }, 'jwt_audience'],
    ['expired past the leeway', { exp: NOW - 30 }, 'jwt_expired'],
    ['nbf past the leeway', { nbf: NOW + 31 }, 'jwt_not_yet_valid'],
    ['iat past the leeway', { iat: NOW + 31, nbf: NOW }, 'jwt_not_yet_valid'],
    ['a lifetime over the bound', { exp: NOW + MAX_TOKEN_LIFETIME_SECONDS + 1 }, 'jwt_lifetime'],
  ])('%s: %s', (_name, overrides, reason) => {
    expect(reasonOf(claims(overrides))).toBe(reason);
  });

  test.each([
    ['expired within the leeway', { exp: NOW - 29 }],
    ['nbf within the leeway', { nbf: NOW + 30 }],
    ['iat within the leeway', { iat: NOW + 30, exp: NOW + 330 }],
    ['aud a list with ours', { aud: ['a', expected.audience] }],
    ['a lifetime at the bound', { exp: NOW + MAX_TOKEN_LIFETIME_SECONDS }],
  ])('%s: accepted', (_name, overrides) => {
    expect(reasonOf(claims(overrides))).toBe('accepted');
  });

  test.each([
    ['nbf (in the future)', { nbf: NOW + 3600 }, { nbf: undefined }, 'accepted'],
    ['exp', { exp: NOW + 300 }, { exp: undefined }, 'jwt_claims'],
    ['iss', { iss: expected.issuer }, { iss: undefined }, 'jwt_issuer'],
    ['aud', { aud: expected.audience }, { aud: undefined }, 'jwt_audience'],
  ])('an inherited %s does not count', (_name, inherited, own, reason) => {
    const payload = Object.assign(Object.create(inherited) as object, claims(own));
    expect(reasonOf(payload as Record<string, unknown>)).toBe(reason);
  });

  test.each([
    ['a clock', { nowSeconds: NaN }],
    ['a leeway', { leewaySeconds: Infinity }],
  ])('%s that is not a finite number is a programming error, not a pass', (_name, options) => {
    expect(() => checkRegisteredClaims(claims({ exp: NOW - 3600 }), { ...expected, ...options })).toThrow(
      TypeError,
    );
  });
});
