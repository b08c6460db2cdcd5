// Per-key token buckets (the key is the verified repository_id): a burst of `capacity` requests,
// refilled at `perMinute`. Keys unused for a while are forgotten so memory stays bounded.
import { RateLimitedError } from '../../shared/errors.js';

/**
 * Takes one request from `key`'s bucket, or counts the refusal and throws 429 with the wait: the
 * one check every route runs before it costs anyone anything.
 */
export function requireWithinLimit(
  limiter: TokenBucketLimiter,
  key: string,
  metrics: { rateLimited: { inc(): void } },
): void {
  const decision = limiter.take(key);
  if (decision.allowed) return;
  metrics.rateLimited.inc();
  throw new RateLimitedError(decision.retryAfterSeconds);
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Whole seconds until one more request would be allowed; 0 when allowed. */
  retryAfterSeconds: number;
}

export class TokenBucketLimiter {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();
  private readonly capacity: number;
  private readonly refillPerMs: number;

  constructor(
    perMinute: number,
    private readonly now: () => number = Date.now,
    capacity?: number,
  ) {
    this.capacity = Math.max(1, capacity ?? perMinute);
    this.refillPerMs = perMinute / 60_000;
  }

  take(key: string): RateLimitDecision {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.capacity, updated: now };
    b.tokens = Math.min(this.capacity, b.tokens + (now - b.updated) * this.refillPerMs);
    b.updated = now;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.forgetIdle(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    const waitMs = this.refillPerMs > 0 ? (1 - b.tokens) / this.refillPerMs : 60_000;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  private forgetIdle(now: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + (now - b.updated) * this.refillPerMs >= this.capacity) this.buckets.delete(k);
  }
}
