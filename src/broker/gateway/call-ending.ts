// What the end of a grant (revoked, reaped, expired) does to one of its calls in flight, so that
// every call has one true outcome that the gateway's audit line and the API server's agree on:
//  - not yet sent on a connection: never sent (the client gets 401, as a call a moment later would);
//  - sent, long-running (a watch, a log stream): cut as soon as its status has come;
//  - sent, short (a write, a get): it completes and keeps its real status, within a grace, after
//    which it is cut anyway (a client that stops reading cannot keep a revoked grant's call open).
// The API server has already accepted a sent call; cutting it would not undo a write, only hide
// its outcome from the job and from the gateway's own audit line.

/** How long a short call sent before its grant ended may still take to complete. */
export const GRANT_END_GRACE_MS = 10_000;

export type EndOutcome = 'not-sent' | 'cut' | 'finishing';

export class CallEnding {
  private sent = false;
  private answered = false;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly longRunning: boolean,
    /** Ends the call now, whatever its state. */
    private readonly cut: () => void,
    private readonly graceMs = GRANT_END_GRACE_MS,
  ) {}

  get wasSent(): boolean {
    return this.sent;
  }

  get grantHasEnded(): boolean {
    return this.ended;
  }

  /** The request went out on a connection: the API server will see it. */
  markSent(): void {
    this.sent = true;
  }

  /** The API server's status came (and was passed on). */
  markAnswered(): void {
    this.answered = true;
    if (this.ended && this.longRunning) this.cut();
  }

  /** The grant ended; what that means for this call. */
  grantEnded(): EndOutcome {
    if (this.ended) return 'finishing';
    this.ended = true;
    if (!this.sent) return 'not-sent';
    if (this.answered && this.longRunning) {
      this.cut();
      return 'cut';
    }
    this.timer = setTimeout(this.cut, this.graceMs);
    this.timer.unref();
    return 'finishing';
  }

  /** The call is over: nothing left to cut. */
  done(): void {
    clearTimeout(this.timer);
  }
}
