// The watch plumbing of the loops that keep a view of the cluster current (the gateway's grant
// table, gateway/grant-watch.ts, and the named-role vetting, role-vetting.ts): each loop watches on
// from the last version it saw, reads afresh when a watch fails, and pauses longer while failures
// go on. What a loop does with an event, and when it reads afresh, stays with the loop.

/**
 * Opens one watch: `onEvent` for every event, then `done` once, with an error unless the server
 * ended the watch. The returned controller ends it. client-node's Watch has this shape; so has the
 * pooled one (pooled-watch.ts), which K8sClients.watcher is wherever the connection can serve it.
 */
export interface Watcher {
  watch<T>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: T) => void,
    done: (err?: unknown) => void,
  ): Promise<AbortController>;
}

/**
 * The server ends each watch after this and the loop watches on from the last version. Below the
 * client's 30 s inactivity timeout, so a quiet watch ends cleanly rather than in error.
 */
export const WATCH_SECONDS = 20;
const RETRY_MS = { first: 250, max: 5_000 };

/** The open watches of one view, all ended at once when the view stops. */
export class OpenWatches {
  private readonly controllers = new Set<AbortController>();
  private ended = false;

  get stopped(): boolean {
    return this.ended;
  }

  /**
   * One watch until the server ends it (resolves) or it fails (rejects: an ERROR event such as 410
   * Gone when the version is too old, or the connection). `onEvent` gets every other event.
   */
  async once<T>(
    watcher: Watcher,
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: T) => void,
  ): Promise<void> {
    let settled = false;
    let end!: (err?: unknown) => void;
    const ended = new Promise<void>((resolve, reject) => {
      end = (err) => {
        settled = true;
        if (err) reject(err);
        else resolve();
      };
    });
    const controller = await watcher.watch(
      path,
      query,
      (type: string, object: T) => {
        // Nothing after an ERROR (or any end) reaches the loop: it reads afresh from here.
        if (settled) return;
        if (type === 'ERROR')
          end(new Error(`watch error ${JSON.stringify((object as { message?: string }).message ?? '')}`));
        else onEvent(type, object);
      },
      (err?: unknown) => end(err ?? undefined),
    );
    this.controllers.add(controller);
    if (this.ended) controller.abort();
    try {
      await ended;
    } finally {
      // Ends the connection too when the watch reported an error but was left open.
      controller.abort();
      this.controllers.delete(controller);
    }
  }

  stop(): void {
    this.ended = true;
    for (const controller of this.controllers) controller.abort();
    this.controllers.clear();
  }
}

/** A pause that doubles while failures go on (up to 5 s), and starts short again after a success. */
export function growingPause(): { pause: () => Promise<void>; reset: () => void } {
  let ms = RETRY_MS.first;
  return {
    async pause() {
      await new Promise((r) => setTimeout(r, ms).unref());
      ms = Math.min(ms * 2, RETRY_MS.max);
    },
    reset() {
      ms = RETRY_MS.first;
    },
  };
}
