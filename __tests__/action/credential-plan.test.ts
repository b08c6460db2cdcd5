// The credential plugin's decision for a cached grant at a given moment.
import { describe, expect, test } from '@jest/globals';
import type { CredentialCache } from '../../src/action/credential-cache.js';
import { planCredential, renewAt } from '../../src/action/credential-plan.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (seconds: number) => T0 + seconds * 1000;
const iso = (seconds: number) => new Date(at(seconds)).toISOString();

const cache = (o: Partial<CredentialCache> = {}): CredentialCache => ({
  version: 1,
  grantId: 'gha-0123456789abcdef0123456789abcdef',
  token: 'header.payload.signature',
  tokenExpiresAt: iso(600),
  expiresAt: iso(60),
  grantedAt: iso(0),
  brokerUrl: 'https://broker.example.com/',
  audience: 'k8s-ephemeral-access',
  ...o,
});

describe('renewAt', () => {
  test('a third of the granted lifetime before the end, at most 5 minutes', () => {
    expect(renewAt(cache())).toBe(at(40));
    expect(renewAt(cache({ expiresAt: iso(900) }))).toBe(at(600));
    expect(renewAt(cache({ expiresAt: iso(3600) }))).toBe(at(3300));
  });
});

describe('planCredential', () => {
  test('fresh: the cached token, and kubectl asks again when renewal is due', () => {
    expect(planCredential(cache(), at(10))).toEqual({ kind: 'use', until: at(40) });
  });

  test('due: renew, with the cached token as fallback until the end', () => {
    expect(planCredential(cache(), at(45))).toEqual({ kind: 'renew', fallbackUntil: at(60) });
  });

  test('ended and never refused: renew with no fallback', () => {
    expect(planCredential(cache(), at(61))).toEqual({ kind: 'renew', fallbackUntil: 0 });
  });

  test('at the session limit: the token to its end, then a failure naming the limit', () => {
    const limited = cache({ expiresAt: iso(150), grantedAt: iso(100), sessionEndsAt: iso(150) });
    expect(planCredential(limited, at(145))).toEqual({ kind: 'use', until: at(150) });
    const after = planCredential(limited, at(150));
    expect(after.kind).toBe('fail');
    expect(after).toMatchObject({ message: expect.stringContaining('session limit') });
  });

  test('refused for good: no further renewal, the token to its end, then the refusal', () => {
    const refused = cache({ refused: 'broker refused the renewal: not allowed (ERR_FORBIDDEN, HTTP 403)' });
    expect(planCredential(refused, at(50))).toEqual({ kind: 'use', until: at(60) });
    expect(planCredential(refused, at(60))).toMatchObject({
      kind: 'fail',
      message: expect.stringContaining('HTTP 403'),
    });
  });
});
