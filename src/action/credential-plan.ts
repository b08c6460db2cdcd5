// What the credential plugin does with the cached grant at a given moment: hand the token out,
// renew it first, or fail. Pure, so every branch is tested without a broker or a clock.
//
// The plugin renews once two thirds of the last granted lifetime have passed (at most 5 minutes
// before the end): a 60 s grant 20 s before its end, a 15 min grant 5 min before. The slack covers
// a slow broker and lets a renewal that fails be tried again by the next kubectl call while the
// token still works. kubectl is told the credential expires at that moment, so a long-running
// client (kubectl wait, helm --wait) runs the plugin again then, not after the grant ended.
import type { CredentialCache } from './credential-cache.js';

export const MAX_RENEW_MARGIN_MS = 5 * 60_000;

export type CredentialPlan =
  /** Hand out the cached token; kubectl should ask again at `until`. */
  | { kind: 'use'; until: number }
  /** Renew first; if that fails, the cached token is still usable until `fallbackUntil` (0: not at all). */
  | { kind: 'renew'; fallbackUntil: number }
  | { kind: 'fail'; message: string };

/** When renewal starts: a third of the granted lifetime before the end, at most MAX_RENEW_MARGIN_MS. */
export function renewAt(cache: Pick<CredentialCache, 'expiresAt' | 'grantedAt'>): number {
  const end = Date.parse(cache.expiresAt);
  const lifetime = Math.max(0, end - Date.parse(cache.grantedAt));
  return end - Math.min(MAX_RENEW_MARGIN_MS, lifetime / 3);
}

export function planCredential(cache: CredentialCache, now: number): CredentialPlan {
  const end = Date.parse(cache.expiresAt);
  const atLimit = cache.sessionEndsAt !== undefined && end >= Date.parse(cache.sessionEndsAt);
  if (atLimit || cache.refused !== undefined) {
    if (now < end) return { kind: 'use', until: end };
    return {
      kind: 'fail',
      message: atLimit
        ? `grant ${cache.grantId} ended at ${cache.expiresAt}: it reached the session limit the broker policy sets (maxSessionSeconds), so it cannot be renewed`
        : `grant ${cache.grantId} ended at ${cache.expiresAt} and cannot be renewed: ${cache.refused}`,
    };
  }
  const due = renewAt(cache);
  if (now < due) return { kind: 'use', until: due };
  return { kind: 'renew', fallbackUntil: now < end ? end : 0 };
}
