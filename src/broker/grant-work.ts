// Work on a grant that outlives its exchange (the self-revoke objects, grants/grants.ts): shutdown
// waits for it, and a revocation of that grant waits for it first, so nothing is created after
// the delete.

export interface GrantWork {
  track(grantId: string, work: Promise<void>): void;
  /** Settles when this replica has no unfinished work on the grant (never rejects). */
  settled(grantId: string): Promise<void>;
  /** Settles when all tracked work has finished. */
  idle(): Promise<void>;
}

/** Tracks unfinished per-grant work; the promises handed in never reject. */
export function createGrantWork(): GrantWork {
  const pending = new Map<string, Promise<void>>();
  return {
    track(grantId, work) {
      pending.set(grantId, work);
      void work.finally(() => {
        if (pending.get(grantId) === work) pending.delete(grantId);
      });
    },
    settled: async (grantId) => pending.get(grantId),
    idle: async () => {
      await Promise.all(pending.values());
    },
  };
}
