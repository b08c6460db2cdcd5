// Reading a token's payload before verification: what is read, and what is never taken for a JWT.
import { expect, test } from '@jest/globals';
import { unverifiedJwtPayload } from '../../src/broker/unverified-jwt.js';

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const token = (payload: unknown, signature = 'c2ln') =>
  `${segment({ alg: 'RS256' })}.${segment(payload)}.${signature}`;

test('the payload of a signed compact JWS, as JSON', () => {
  const payload = {
    sub: 'system:serviceaccount:ns:gha-1',
    exp: 1,
    'kubernetes.io': { serviceaccount: { uid: 'u' } },
  };
  expect(unverifiedJwtPayload(token(payload))).toEqual(payload);
});

test.each([
  ['no signature', token({ sub: 'x' }, '')],
  ['two segments', `${segment({ alg: 'RS256' })}.${segment({ sub: 'x' })}`],
  ['four segments', `${token({ sub: 'x' })}.more`],
  ['a character outside base64url', `${segment({ alg: 'RS256' })}.${segment({ sub: 'x' })}+.c2ln`],
  [
    'a payload that is not JSON',
    `${segment({ alg: 'RS256' })}.${Buffer.from('not json').toString('base64url')}.c2ln`,
  ],
  ['a JSON array', token(['sub'])],
  ['a JSON string', token('sub')],
  ['null', token(null)],
  ['empty', ''],
])('%s is not read as a JWT', (_what, t) => {
  expect(unverifiedJwtPayload(t)).toBeUndefined();
});

test('what Node would decode and a JWT decoder refuses: a dangling last character, bytes that are not UTF-8', () => {
  const header = segment({ alg: 'RS256' });
  const payload = segment({ sub: 'xy' }); // 12 bytes: 16 characters, whole quanta
  expect(unverifiedJwtPayload(`${header}.${payload}.c2ln`)).toEqual({ sub: 'xy' });
  // One character more: Node's decoder would drop it and read the same 12 bytes.
  expect(unverifiedJwtPayload(`${header}.${payload}A.c2ln`)).toBeUndefined();
  // {"sub":"<0xff>"}: valid base64url, not UTF-8 (Node would read U+FFFD).
  const latin = Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xff]), Buffer.from('"}')]);
  expect(unverifiedJwtPayload(`${header}.${latin.toString('base64url')}.c2ln`)).toBeUndefined();
});
