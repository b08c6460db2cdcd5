// A bounded number of upstream connections for one lane of calls, handed out in arrival order,
// with a bounded wait: a call that cannot get a connection in time is answered 503 instead of
// queueing without end. The pool behind a gate (upstream.ts) has exactly as many connections, so
// the pool itself never queues and the wait is measured here, where it is visible (a metric).

/** What waiting for a connection came to. */
export type GateResult = { release: () => void } | { refused: 'timeout' | 'cancelled' };

interface Waiter {
  grant: (release: () => void) => void;
}

export class ConnectionGate {
  private inUse = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    readonly size: number,
    /** Told the queue's length whenever it changes (the gauge). */
    private readonly onQueue: (queued: number) => void = () => undefined,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  get used(): number {
    return this.inUse;
  }

  /**
   * A connection within `waitMs`, or why not. `cancel` (the client left, the grant ended) gives
   * up the place in the queue at once.
   */
  acquire(waitMs: number, cancel?: AbortSignal): Promise<GateResult> {
    if (this.inUse < this.size && this.waiting.length === 0) {
      this.inUse += 1;
      return Promise.resolve({ release: this.releaser() });
    }
    if (cancel?.aborted) return Promise.resolve({ refused: 'cancelled' });
    return new Promise((resolve) => {
      const leave = (refused: 'timeout' | 'cancelled') => {
        const i = this.waiting.indexOf(waiter);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        this.onQueue(this.waiting.length);
        clearTimeout(timer);
        cancel?.removeEventListener('abort', onAbort);
        resolve({ refused });
      };
      const onAbort = () => leave('cancelled');
      const waiter: Waiter = {
        grant: (release) => {
          clearTimeout(timer);
          cancel?.removeEventListener('abort', onAbort);
          resolve({ release });
        },
      };
      const timer = setTimeout(() => leave('timeout'), waitMs);
      cancel?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      this.onQueue(this.waiting.length);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) {
        this.onQueue(this.waiting.length);
        // The connection passes straight to the next in line: inUse stays as it is.
        next.grant(this.releaser());
      } else this.inUse -= 1;
    };
  }
}
