// The in-memory single-use record: a key is refused while it is remembered, forgotten after its
// expiry, and the cache never grows past its bound.
import { describe, expect, test } from '@jest/globals';
import { createReplayCache } from '../../../src/broker/auth/replay-cache.js';

describe('replay cache', () => {
  test('a key is accepted once until it expires, then may be recorded again', () => {
    let now = 1_000;
    const cache = createReplayCache({ now: () => now });
    expect(cache.markUsed('iss\njti-1', 5_000)).toBe(true);
    expect(cache.markUsed('iss\njti-1', 5_000)).toBe(false);
    expect(cache.markUsed('iss\njti-2', 5_000)).toBe(true);
    now = 5_000;
    expect(cache.markUsed('iss\njti-1', 9_000)).toBe(true);
  });

  test('expired entries are dropped, and the size never exceeds the bound', () => {
    let now = 0;
    const cache = createReplayCache({ now: () => now, maxEntries: 3 });
    for (let i = 0; i < 10; i += 1) {
      expect(cache.markUsed(`k${i}`, 1_000_000)).toBe(true);
      expect(cache.size()).toBeLessThanOrEqual(3);
    }
    // The newest entries are still remembered; the oldest were evicted to make room.
    expect(cache.markUsed('k9', 1_000_000)).toBe(false);
    expect(cache.markUsed('k8', 1_000_000)).toBe(false);
    now = 1_000_000;
    expect(cache.markUsed('fresh', 2_000_000)).toBe(true);
    expect(cache.size()).toBe(1);
  });

  test('an invalid bound is a programming error', () => {
    expect(() => createReplayCache({ maxEntries: 0 })).toThrow(TypeError);
  });
});
