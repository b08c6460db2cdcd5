// The per-repository token bucket, driven by a fake clock.
import { expect, test } from '@jest/globals';
import { TokenBucketLimiter } from '../../../src/broker/http/rate-limit.js';
import { parseExchangeRequest } from '../../../src/broker/http/validate.js';

test('a burst up to the limit, then refusals with Retry-After, then refill over time', () => {
  let now = 1_000_000;
  const l = new TokenBucketLimiter(6, () => now); // 6 per minute: one every 10 s
  for (let i = 0; i < 6; i++) expect(l.take('repo-a').allowed).toBe(true);
  const refused = l.take('repo-a');
  expect(refused).toEqual({ allowed: false, retryAfterSeconds: 10 });
  expect(l.take('repo-b').allowed).toBe(true); // buckets are per repository
  now += 9_000;
  expect(l.take('repo-a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
  now += 1_000;
  expect(l.take('repo-a').allowed).toBe(true);
  expect(l.take('repo-a').allowed).toBe(false);
});

test('exchange bodies: strict shape', () => {
  expect(parseExchangeRequest({ namespace: 'staging', role: 'deployer', ttlSeconds: 600 })).toEqual({
    namespace: 'staging',
    role: 'deployer',
    ttlSeconds: 600,
  });
  for (const bad of [
    null,
    [],
    'x',
    { namespace: 'Staging', role: 'r' },
    { namespace: 'staging' },
    { namespace: 'staging', role: 'r', ttlSeconds: 1.5 },
    { namespace: 'staging', role: 'r', ttlSeconds: 0 },
    { namespace: 'staging', role: 'r', ttlSeconds: '600' },
    { namespace: 'staging', role: 'r', extra: 1 },
    { namespace: 'a'.repeat(64), role: 'r' },
  ])
    expect(() => parseExchangeRequest(bad)).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST' }));
});
