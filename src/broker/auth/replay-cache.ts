// Remembers which GitHub tokens were already used, so each token (iss + jti) is accepted once.
// In memory and per replica: the Kubernetes layer adds cross-replica single use by deriving object
// names from the jti. Entries live until the token could no longer pass the expiry check
// (exp + leeway). The size is bounded: when full, the oldest entries are dropped first; those are
// the ones closest to expiry, and the grant names still stop a second grant from them.

export interface ReplayCache {
  /** Records the key; returns false when it was already recorded and has not expired. */
  markUsed(key: string, keepUntilMs: number): boolean;
}

export interface ReplayCacheOptions {
  /** Default 100 000 entries (a few MB). */
  maxEntries?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export function createReplayCache(options: ReplayCacheOptions = {}): ReplayCache & { size(): number } {
  const maxEntries = options.maxEntries ?? 100_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1)
    throw new TypeError('"maxEntries" option must be a positive integer');
  const time = options.now ?? Date.now;
  // Map keeps insertion order, which is close to expiry order since GitHub tokens share one lifetime.
  const entries = new Map<string, number>();

  const dropExpired = (now: number, all: boolean) => {
    for (const [key, until] of entries) {
      if (until <= now) entries.delete(key);
      else if (!all) break;
    }
  };

  return {
    markUsed(key, keepUntilMs) {
      const now = time();
      const seenUntil = entries.get(key);
      if (seenUntil !== undefined && seenUntil > now) return false;
      entries.delete(key);
      dropExpired(now, false);
      if (entries.size >= maxEntries) dropExpired(now, true);
      while (entries.size >= maxEntries) {
        const oldest = entries.keys().next();
        if (oldest.done) break;
        entries.delete(oldest.value);
      }
      entries.set(key, keepUntilMs);
      return true;
    },
    size: () => entries.size,
  };
}
