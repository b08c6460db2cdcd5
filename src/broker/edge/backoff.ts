// How long a replica waits before dialling the edge again: doubling from `initialMs`, never past
// `maxMs`, with jitter so that replicas cut off together do not all return in the same instant.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** The wait before retry number `attempt` (0 for the first retry): within [ceiling/2, ceiling]. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
