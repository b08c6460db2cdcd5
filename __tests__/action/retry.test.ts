// The retry policy: which errors are retried, how long it waits, and that it stops in time.
import { describe, expect, jest, test } from '@jest/globals';
import fc from 'fast-check';
import { backoffDelay, parseRetryAfter, retry, type RetryOptions } from '../../src/action/retry.js';
import { virtualClock } from './support/fakes.js';

class Transient extends Error {}
class Permanent extends Error {}

function options(overrides: Partial<RetryOptions> = {}) {
  const clock = virtualClock(0);
  const log: string[] = [];
  const opts: RetryOptions = {
    label: 'test op',
    attempts: 5,
    deadline: 60_000,
    classify: (err) => ({ retry: err instanceof Transient }),
    sleep: clock.sleep,
    now: clock.now,
    random: () => 0.5,
    log: (m) => log.push(m),
    ...overrides,
  };
  return { opts, clock, log };
}

describe('retry', () => {
  test('retries transient failures and returns the first success', async () => {
    const { opts, log } = options();
    const fn = jest.fn<(n: number) => Promise<string>>(async (n) => {
      if (n < 3) throw new Transient(`boom ${n}`);
      return 'ok';
    });
    await expect(retry(fn, opts)).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(3);
    expect(log).toEqual([
      expect.stringMatching(/^test op: attempt 1\/5 failed: boom 1; retrying in \d+ ms$/),
      expect.stringMatching(/^test op: attempt 2\/5 failed: boom 2; retrying in \d+ ms$/),
    ]);
  });

  test('does not retry an error the classifier rejects, and rethrows it unchanged', async () => {
    const { opts, clock } = options();
    const err = new Permanent('forbidden');
    const fn = jest.fn(async () => {
      throw err;
    });
    await expect(retry(fn, opts)).rejects.toBe(err);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(clock.sleeps).toEqual([]);
  });

  test('gives up after the attempt limit with the last error', async () => {
    const { opts, log } = options({ attempts: 3 });
    let n = 0;
    await expect(
      retry(async () => {
        n += 1;
        throw new Transient(`fail ${n}`);
      }, opts),
    ).rejects.toThrow('fail 3');
    expect(n).toBe(3);
    expect(log.at(-1)).toMatch(/attempt 3\/3 failed: fail 3; giving up/);
  });

  test('does not start an attempt after the deadline', async () => {
    const { opts, clock, log } = options({
      attempts: 100,
      deadline: 5_000,
      baseDelayMs: 1_000,
      random: () => 0.99,
    });
    let n = 0;
    await expect(
      retry(async () => {
        n += 1;
        throw new Transient('down');
      }, opts),
    ).rejects.toThrow('down');
    expect(clock.now()).toBeLessThanOrEqual(5_000);
    expect(n).toBeLessThan(100);
    expect(log.at(-1)).toMatch(/no time left before the deadline/);
  });

  test('waits at least the server-requested time (Retry-After)', async () => {
    const { opts, clock } = options({ classify: () => ({ retry: true, afterMs: 7_000 }) });
    let n = 0;
    await retry(async () => {
      n += 1;
      if (n === 1) throw new Transient('rate limited');
      return n;
    }, opts);
    expect(clock.sleeps).toEqual([7_000]);
  });

  test('a Retry-After beyond the deadline ends the retries instead of overrunning it', async () => {
    const { opts, clock } = options({ deadline: 10_000, classify: () => ({ retry: true, afterMs: 30_000 }) });
    await expect(
      retry(async () => {
        throw new Transient('busy');
      }, opts),
    ).rejects.toThrow('busy');
    expect(clock.sleeps).toEqual([]);
  });

  test('rejects a nonsensical attempt count as a programming error', async () => {
    const { opts } = options({ attempts: 0 });
    await expect(retry(async () => 1, opts)).rejects.toThrow(TypeError);
  });

  test('backoff is random, below a ceiling that doubles per attempt up to the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const d = backoffDelay(attempt, 500, 8_000, () => r);
          const ceiling = Math.min(8_000, 500 * 2 ** (attempt - 1));
          return d >= 0 && d < ceiling && Number.isInteger(d);
        },
      ),
    );
    expect(backoffDelay(1, 500, 8_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 500, 8_000, () => 0.5)).toBe(1_000);
  });
});

describe('parseRetryAfter', () => {
  test('reads delta-seconds and HTTP dates, ignores garbage', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 01 Jan 2029 00:00:10 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
  });
});
