// Who a bearer token belongs to, as the API server's TokenReview says, remembered for a short
// time. Keyed by a SHA-256 of the token, never the token. Only accepted tokens are cached: what
// a token authenticates as never changes, and whether that identity may still use the gateway is
// decided by the live-grant table on every request, so the cache cannot keep a revoked grant in.
// Bounded in size (oldest first out) and in time (a minute, never past the token's own exp).
// Concurrent reviews of one token (kubectl's parallel discovery calls) share one TokenReview.
import { createHash } from 'node:crypto';

export interface ReviewedIdentity {
  namespace: string;
  name: string;
  uid: string;
}

export type Review = (token: string) => Promise<ReviewedIdentity | undefined>;

export const REVIEW_CACHE_MS = 60_000;
export const REVIEW_CACHE_ENTRIES = 10_000;

export class TokenReviewCache {
  private readonly entries = new Map<string, { identity: ReviewedIdentity; until: number }>();
  private readonly pending = new Map<string, Promise<ReviewedIdentity | undefined>>();

  constructor(
    private readonly review: Review,
    private readonly now: () => number = Date.now,
    private readonly limits = { ttlMs: REVIEW_CACHE_MS, maxEntries: REVIEW_CACHE_ENTRIES },
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** `expiresAtMs`: the token's own exp (unverified; it only shortens the cache entry). */
  async identify(token: string, expiresAtMs: number): Promise<ReviewedIdentity | undefined> {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now()) return hit.identity;
    if (hit) this.entries.delete(key);
    let review = this.pending.get(key);
    if (!review) {
      review = this.review(token).finally(() => this.pending.delete(key));
      this.pending.set(key, review);
    }
    const identity = await review;
    if (identity) this.remember(key, identity, Math.min(this.now() + this.limits.ttlMs, expiresAtMs));
    return identity;
  }

  private remember(key: string, identity: ReviewedIdentity, until: number): void {
    if (until <= this.now()) return;
    this.entries.delete(key);
    this.entries.set(key, { identity, until });
    while (this.entries.size > this.limits.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}
