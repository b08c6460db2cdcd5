// One retry helper for every remote call the action makes (GitHub's token endpoint, the broker).
// Random ("full jitter") exponential backoff so parallel jobs do not retry in lock-step, a labelled
// log line per failed attempt, and one overall deadline so a misconfigured job fails in bounded time.
// The caller decides per error whether it is worth retrying (a 403 never is; a reset connection is).

export interface RetryDecision {
  retry: boolean;
  /** A server-requested wait (Retry-After); used instead of the random backoff when longer. */
  afterMs?: number;
}

export interface RetryOptions {
  /** Names the operation in log lines, e.g. 'broker exchange'. */
  label: string;
  /** Upper bound on attempts, including the first. */
  attempts: number;
  /** Absolute time (ms since epoch, from `now`) after which no new attempt starts. */
  deadline: number;
  /** First backoff ceiling; doubles per attempt up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  classify: (err: unknown) => RetryDecision;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  /** In [0, 1); injectable so tests can pin the backoff. */
  random?: () => number;
  log: (message: string) => void;
  describe?: (err: unknown) => string;
}

/** Milliseconds to wait from a Retry-After header (delta-seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date always names the weekday and month; this keeps "-1" from parsing as a year.
  if (!/[A-Za-z]{3}/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

export function backoffDelay(attempt: number, base: number, max: number, random: () => number): number {
  const ceiling = Math.min(max, base * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

const describeDefault = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Runs fn until it succeeds, the error is not retryable, attempts run out, or the next attempt
 * would start after the deadline. Rethrows the last error unchanged so callers keep its type.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  if (!Number.isInteger(options.attempts) || options.attempts < 1)
    throw new TypeError('"attempts" option must be a positive integer');
  const base = options.baseDelayMs ?? 500;
  const max = options.maxDelayMs ?? 8_000;
  const random = options.random ?? Math.random;
  const describe = options.describe ?? describeDefault;

  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn(attempt);
    } catch (err) {
      const decision = options.classify(err);
      if (!decision.retry) throw err;
      if (attempt >= options.attempts) {
        options.log(
          `${options.label}: attempt ${attempt}/${options.attempts} failed: ${describe(err)}; giving up`,
        );
        throw err;
      }
      const wait = Math.max(backoffDelay(attempt, base, max, random), decision.afterMs ?? 0);
      if (options.now() + wait > options.deadline) {
        options.log(
          `${options.label}: attempt ${attempt}/${options.attempts} failed: ${describe(err)}; ` +
            `no time left before the deadline, giving up`,
        );
        throw err;
      }
      options.log(
        `${options.label}: attempt ${attempt}/${options.attempts} failed: ${describe(err)}; retrying in ${wait} ms`,
      );
      await options.sleep(wait);
    }
  }
}
