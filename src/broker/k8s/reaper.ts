// The reaper: the safety net for grants whose revocation never came (runner died, job cancelled
// hard, broker unreachable). Every interval, the replica holding the lease lists grants by label
// in the managed namespaces and deletes those past their expires-at annotation. A failed deletion
// is retried with backoff on later passes, forever: an expired grant must never become permanent.
import type { K8sClients } from './clients.js';
import { describeK8sError } from './errors.js';
import { deleteGrantObjects } from './revoke.js';
import { LeaderLease } from './lease.js';
import { pruneJwtLedger } from './replay-ledger.js';
import { EXPIRES_AT_ANNOTATION, GRANT_LABEL, MANAGED_SELECTOR } from '../naming.js';
import type { Logger } from '../logger.js';
import type { AuditLog } from '../audit.js';
import type { BrokerMetrics } from '../metrics.js';

export interface ReaperOptions {
  namespaces: () => readonly string[];
  intervalSeconds: number;
  lease: { namespace: string; name: string; identity: string };
  logger: Logger;
  audit: AuditLog;
  metrics?: BrokerMetrics;
  now?: () => number;
  /** Longest wait between retries of one grant, in passes (backoff doubles up to it). */
  maxBackoffPasses?: number;
  /** Expired grants deleted at the same time. Default REAP_CONCURRENCY. */
  concurrency?: number;
}

/** Enough to hide the API round trips, few enough not to flood the API server after an outage. */
export const REAP_CONCURRENCY = 8;

type Backoff = { failures: number; nextPass: number };

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

export interface ReapPassResult {
  leader: boolean;
  seen: number;
  reaped: string[];
  failed: string[];
  /** Expired JWT-use records deleted (k8s/replay-ledger.ts). */
  prunedLedger?: number;
}

export class Reaper {
  private readonly lease: LeaderLease;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  /** Per grant: consecutive failures and the pass number before which we do not try again. */
  private readonly backoff = new Map<string, Backoff>();
  private pass = 0;

  constructor(
    private readonly k8s: K8sClients,
    private readonly options: ReaperOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.lease = new LeaderLease(k8s, {
      ...options.lease,
      // Long enough to survive a missed renewal, short enough that a dead leader is replaced quickly.
      leaseDurationSeconds: Math.max(15, Math.ceil(options.intervalSeconds * 3)),
      now: this.now,
    });
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.runOnce()
        .catch((err: unknown) =>
          this.options.logger.warn('reaper pass failed', { error: describeK8sError(err) }),
        )
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.options.intervalSeconds * 1000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running;
    await this.lease.release().catch(() => undefined);
  }

  /** One pass: take or renew the lease, then delete expired grants. */
  async runOnce(): Promise<ReapPassResult> {
    this.pass += 1;
    const result: ReapPassResult = { leader: false, seen: 0, reaped: [], failed: [] };
    result.leader = await this.lease.tryAcquireOrRenew();
    if (!result.leader) return result;
    const now = this.now();
    for (const namespace of this.options.namespaces()) {
      const list = await this.k8s.core.listNamespacedServiceAccount({
        namespace,
        labelSelector: MANAGED_SELECTOR,
      });
      const expired: { grantId: string; sa: (typeof list.items)[number]; key: string; b?: Backoff }[] = [];
      for (const sa of list.items) {
        const grantId = sa.metadata?.labels?.[GRANT_LABEL];
        if (!grantId || sa.metadata?.name !== grantId) continue;
        result.seen += 1;
        const expiresAt = Date.parse(sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION] ?? '');
        // A grant without a readable expiry is treated as expired: nothing may live forever.
        if (Number.isFinite(expiresAt) && expiresAt > now) continue;
        if (sa.metadata?.deletionTimestamp) continue;
        const key = `${namespace}/${grantId}`;
        const b = this.backoff.get(key);
        if (b && this.pass < b.nextPass) {
          result.failed.push(grantId);
          continue;
        }
        expired.push({ grantId, sa, key, b });
      }
      // Several grants at a time: one by one, each grant's three dependent round trips made the lag
      // grow by ~30 ms per expired grant (30 s for 1,000; bench/, docs/benchmarks.md).
      await forEachLimited(
        expired,
        this.options.concurrency ?? REAP_CONCURRENCY,
        async ({ grantId, sa, key, b }) => {
          try {
            await deleteGrantObjects(this.k8s, namespace, grantId, { uid: sa.metadata?.uid });
            this.backoff.delete(key);
            result.reaped.push(grantId);
            this.options.metrics?.reaped.inc();
            this.options.audit.record({
              action: 'reap',
              grantId,
              namespace,
              serviceAccount: grantId,
              serviceAccountUid: sa.metadata?.uid,
              expiresAt: sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION],
              by: 'reaper',
              labels: sa.metadata?.labels,
              annotations: sa.metadata?.annotations,
            });
          } catch (err) {
            const failures = (b?.failures ?? 0) + 1;
            const wait = Math.min(2 ** (failures - 1), this.options.maxBackoffPasses ?? 8);
            this.backoff.set(key, { failures, nextPass: this.pass + wait });
            result.failed.push(grantId);
            this.options.metrics?.reapFailures.inc();
            this.options.logger.error('could not reap an expired grant; will retry', {
              grantId,
              namespace,
              failures,
              error: describeK8sError(err),
            });
          }
        },
      );
    }
    this.options.metrics?.activeGrants.set(result.seen - result.reaped.length);
    try {
      result.prunedLedger = await pruneJwtLedger(this.k8s, this.options.lease.namespace, now);
    } catch (err) {
      this.options.logger.warn('could not prune JWT-use records; will retry', {
        error: describeK8sError(err),
      });
    }
    return result;
  }
}
