// One grant (or one repository's grants) against all: caps on what a grant may have in flight
// through this replica at once, counted separately for short calls and for long-running ones
// (watches, log streams), so that no job can take the upstream connections every other job
// needs. Over a cap the call is refused with 429 and Retry-After (client-go then waits and
// retries by itself); it never reaches the API server.
import type { GatewayLimits } from '../config/broker-config.js';
import type { Refusal } from './request-guard.js';

/** What a refused call is told to wait before it retries, in seconds. */
export const LIMITED_RETRY_AFTER_SECONDS = 1;

export type Lane = 'short' | 'long';

/** Who a call is counted against. */
export interface CallOwner {
  uid: string;
  /** Absent on a grant whose ServiceAccount has no repository label: counted per grant only. */
  repositoryId?: string;
}

/** A held place under the caps; release it exactly once, when the call is over. */
export type Release = () => void;

export class ConcurrencyCaps {
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly limits: GatewayLimits) {}

  /** A place for this call, or the refusal when one of its owner's caps is full. */
  take(owner: CallOwner, lane: Lane): Release | Refusal {
    const long = lane === 'long';
    const keys: [string, number, string][] = [
      [
        `${lane}/grant/${owner.uid}`,
        long ? this.limits.longRunningPerGrant : this.limits.requestsPerGrant,
        'this grant',
      ],
    ];
    if (owner.repositoryId !== undefined)
      keys.push([
        `${lane}/repository/${owner.repositoryId}`,
        long ? this.limits.longRunningPerRepository : this.limits.requestsPerRepository,
        "this repository's grants",
      ]);
    for (const [key, limit, whose] of keys)
      if ((this.inFlight.get(key) ?? 0) >= limit)
        return {
          status: 429,
          reason: long ? 'long_running_limit' : 'request_limit',
          message: `${whose} already ${long ? 'hold' : 'have'} ${limit} ${long ? 'watches or log streams' : 'calls in flight'} through this gateway (the limit); retry when one ends`,
          retryAfterSeconds: LIMITED_RETRY_AFTER_SECONDS,
        };
    for (const [key] of keys) this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const [key] of keys) {
        const left = (this.inFlight.get(key) ?? 1) - 1;
        if (left > 0) this.inFlight.set(key, left);
        else this.inFlight.delete(key);
      }
    };
  }

  /** Owners with calls in flight (for tests: the map must empty when the calls end). */
  get size(): number {
    return this.inFlight.size;
  }
}
