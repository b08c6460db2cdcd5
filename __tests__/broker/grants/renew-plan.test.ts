// How far a renewal moves a grant's end: min(now + ttl, session end), never backwards, whole
// seconds, and a new token only when the grant would outlive the current one.
import { describe, expect, test } from '@jest/globals';
import { planRenewal } from '../../../src/broker/grants/renew-grant.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const s = (seconds: number) => T0 + seconds * 1000;
const base = {
  now: s(40),
  ttlSeconds: 60,
  currentExpiresAt: s(60),
  sessionEndsAt: s(150),
  tokenExpiresAt: s(600),
};

describe('planRenewal', () => {
  test('moves the end to now + ttl, keeping the token that still outlives it', () => {
    expect(planRenewal(base)).toEqual({ kind: 'renew', expiresAt: s(100), mintToken: false });
  });

  test('never past the session limit; at the limit, refused', () => {
    expect(planRenewal({ ...base, now: s(120), currentExpiresAt: s(140) })).toEqual({
      kind: 'renew',
      expiresAt: s(150),
      mintToken: false,
    });
    expect(planRenewal({ ...base, now: s(140), currentExpiresAt: s(150) })).toEqual({ kind: 'limit' });
  });

  test('an early renewal (now + ttl before the current end) changes nothing', () => {
    expect(planRenewal({ ...base, now: s(1), currentExpiresAt: s(90) })).toEqual({
      kind: 'renew',
      expiresAt: s(90),
      mintToken: false,
    });
  });

  test('an ended grant, or one whose end is unreadable, is not renewed', () => {
    expect(planRenewal({ ...base, now: s(60) })).toEqual({ kind: 'expired' });
    expect(planRenewal({ ...base, currentExpiresAt: -Infinity })).toEqual({ kind: 'expired' });
    expect(planRenewal({ ...base, currentExpiresAt: NaN })).toEqual({ kind: 'expired' });
  });

  test('a new token when the grant would outlive the current one, or its expiry is unknown', () => {
    const long = { ...base, ttlSeconds: 900, sessionEndsAt: s(3600) };
    expect(planRenewal(long)).toEqual({ kind: 'renew', expiresAt: s(940), mintToken: true });
    expect(planRenewal({ ...base, tokenExpiresAt: NaN })).toMatchObject({ mintToken: true });
  });

  test('whole seconds, rounded down: the session limit is never passed by a fraction', () => {
    const plan = planRenewal({ ...base, now: s(40) + 700, sessionEndsAt: s(150) + 300 });
    expect(plan).toEqual({ kind: 'renew', expiresAt: s(100), mintToken: false });
  });
});
