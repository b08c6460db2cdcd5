// The gateway's calls in flight, by grant: when a grant leaves the table (revoked at any replica,
// reaped, replaced) its calls are told at once; expiry needs no event, so open calls are checked
// against the clock every second; at shutdown every call is cut.
import type { LiveGrants } from './live-grants.js';

/** How often open requests are checked against the clock (expiry needs no event). */
const EXPIRY_SWEEP_MS = 1_000;

/** A call's end when its grant ended, and a hard cut (shutdown). */
export interface OpenCall {
  grantEnded(): void;
  cut(): void;
}

export class OpenRequests {
  /** uid → its calls in flight (waiting for a connection or forwarded). */
  private readonly byUid = new Map<string, Set<OpenCall>>();
  private readonly sweep: NodeJS.Timeout;
  private forwarded = 0;

  constructor(private readonly table: Pick<LiveGrants, 'live' | 'onGone'>) {
    table.onGone((uid) => this.endAll(uid));
    this.sweep = setInterval(() => {
      for (const uid of this.byUid.keys()) if (!this.table.live(uid)) this.endAll(uid);
    }, EXPIRY_SWEEP_MS);
    this.sweep.unref();
  }

  /** Forwarded requests open right now (those still waiting for a connection not counted). */
  get forwarding(): number {
    return this.forwarded;
  }

  /** Registers a call of grant `uid`; the returned function takes it off again. */
  track(uid: string, call: OpenCall): () => void {
    let calls = this.byUid.get(uid);
    if (!calls) this.byUid.set(uid, (calls = new Set()));
    calls.add(call);
    return () => {
      const set = this.byUid.get(uid);
      set?.delete(call);
      if (set?.size === 0) this.byUid.delete(uid);
    };
  }

  /** As track, for a call on its way to the API server: counted in `forwarding` until taken off. */
  trackForwarded(uid: string, call: OpenCall): () => void {
    const untrack = this.track(uid, call);
    this.forwarded += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.forwarded -= 1;
      untrack();
    };
  }

  /** Cuts every open call and stops the clock check (shutdown). */
  cutAll(): void {
    clearInterval(this.sweep);
    for (const calls of [...this.byUid.values()]) for (const call of calls) call.cut();
    this.byUid.clear();
  }

  private endAll(uid: string): void {
    const calls = this.byUid.get(uid);
    if (!calls) return;
    this.byUid.delete(uid);
    for (const call of calls) call.grantEnded();
  }
}
