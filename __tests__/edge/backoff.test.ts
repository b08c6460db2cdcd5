// The tunnel's redial backoff: doubling, jittered, and never past its ceiling.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { backoffDelay } from '../../src/broker/edge/backoff.js';

describe('backoffDelay', () => {
  const options = { initialMs: 250, maxMs: 10_000 };

  it('doubles from initialMs, jitter between half and all of the step', () => {
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, options, () => 1))).toEqual([250, 500, 1000, 2000]);
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, options, () => 0))).toEqual([125, 250, 500, 1000]);
  });

  it('is bounded by maxMs for any attempt, however large', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 1_000_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, r) => {
          const d = backoffDelay(a, options, () => r);
          expect(d).toBeGreaterThanOrEqual(options.initialMs / 2);
          expect(d).toBeLessThanOrEqual(options.maxMs);
        },
      ),
    );
    expect(backoffDelay(10_000, options, () => 1)).toBe(10_000);
  });
});
