// The reaper: the safety net for grants whose revocation never came (runner died, job cancelled
// hard, broker unreachable). Every interval, and as soon as the next grant it knows of expires,
// the replica holding the lease reads the broker's
// JWT-use records (one LIST in its own namespace), lists the ServiceAccounts of every namespace the
// policy or a record names (one LIST each), and deletes the grants past their expiry. It deletes
// only what it can prove is a grant, or a root of its own whose record never landed
// (grants/grant-proof.ts, and ownerReferences for the dependents);
// a ServiceAccount merely labelled like one is logged once and left alone. A namespace it cannot
// read is logged and counted, and the pass goes on. A failed deletion is retried with backoff on
// later passes, forever: an expired grant must never become permanent.
import type { K8sClients } from '../kube/clients.js';
import type { ListedObject } from '../kube/hot-path-api.js';
import { LIST_PAGE_SIZE, listReduced } from '../kube/paged-list.js';
import { describeK8sError, isNotFound } from '../kube/errors.js';
import { deleteGrantObjects, deleteOwnedBindings, listDependents, type KnownDependents } from './revoke.js';
import { LeaderLease } from './lease.js';
import { deleteJwtUse, listJwtUses, type JwtUseRecord } from './replay-ledger.js';
import { proveGrants, type ProvenGrant } from './grant-proof.js';
import { EXPIRES_AT_ANNOTATION, rfc3339 } from '../naming.js';
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
  /** Objects per page of the pass's listings (kube/paged-list.ts); the tests make it small. */
  listPageSize?: number;
}

/**
 * Enough to hide the API round trips (twice the 8 that reaped ~80 grants/s, now with half the
 * requests per grant, docs/benchmarks.md), few enough not to flood the API server after an outage:
 * on a saturated one, more in flight only makes each call slower.
 */
export const REAP_CONCURRENCY = 16;
/** From this many expired grants in a namespace, one LIST of its Roles and RoleBindings replaces four reads per grant. */
export const LIST_DEPENDENTS_FROM = 16;
/** A pass scheduled at a grant's expiry runs this much after it (expiries are whole seconds). */
const EXPIRY_SLACK_MS = 50;
/** Never two passes closer than this, whatever the expiries say. */
const MIN_GAP_MS = 250;

type Backoff = { failures: number; nextPass: number };

/**
 * How long after a pass ends the next one starts: the interval, or less when a known grant expires
 * sooner, so that the pass runs just after that expiry instead of up to an interval later. Grants
 * created after this pass by another replica are seen through their JWT-use records on the next
 * one. When the pass at the interval would still be running at a known expiry (passes take about
 * as long as the last one, and the next waits MIN_GAP_MS after it), the pass waits for that expiry
 * instead: otherwise the grants expiring then waited for it to end (up to a pass and MIN_GAP_MS
 * late, a few hundred ms with 1,000 grants). That postpones the pass at the interval by at most a
 * pass and MIN_GAP_MS.
 */
export function nextPassDelay(o: {
  intervalMs: number;
  now: number;
  nextExpiry: number | undefined;
  lastPassMs: number;
}): number {
  if (o.nextExpiry === undefined) return o.intervalMs;
  const untilExpiry = Math.max(MIN_GAP_MS, o.nextExpiry - o.now + EXPIRY_SLACK_MS);
  return untilExpiry <= o.intervalMs + Math.max(0, o.lastPassMs) + MIN_GAP_MS ? untilExpiry : o.intervalMs;
}

/**
 * How many records name a grant in `namespace` that has expired by `now` and was there on the last
 * pass (a record outlives its grant: revoked grants' records must not count).
 */
function expiredRecordsIn(
  records: ReadonlyMap<string, JwtUseRecord>,
  namespace: string,
  now: number,
  seen: ReadonlySet<string>,
): number {
  let n = 0;
  for (const r of records.values())
    if (
      r.namespace === namespace &&
      (r.grantExpiresAt ?? Infinity) <= now &&
      seen.has(grantKey(namespace, r.grantId))
    )
      n += 1;
  return n;
}

/**
 * Every ServiceAccount of the namespace (not only labelled ones: grant-proof.ts), a page at a time
 * as plain JSON, each kept as the little the pass reads. One answer of every object, deserialized
 * into client-node's objects, cost more CPU and blocked the event loop longer with every live grant
 * (2,000: 234 against 170 ms of CPU, blocks of 123 against 55 ms; docs/benchmarks.md, finding 20).
 */
function listServiceAccounts(k8s: K8sClients, namespace: string, pageSize: number): Promise<ListedObject[]> {
  const slim = ({ metadata: m }: ListedObject): ListedObject => ({
    metadata: {
      name: m?.name,
      uid: m?.uid,
      labels: m?.labels,
      annotations: m?.annotations,
      creationTimestamp: m?.creationTimestamp,
      deletionTimestamp: m?.deletionTimestamp,
    },
  });
  return listReduced(
    (page) => k8s.hotPath.listNamespacedServiceAccount({ namespace, ...page }),
    slim,
    pageSize,
  ).then((r) => r.kept);
}

/**
 * A grant as the pass keeps track of it: its namespace and id. By id alone, a ServiceAccount of the
 * same name in another namespace (a look-alike) could stand in for the grant a record names.
 */
const grantKey = (namespace: string | undefined, grantId: string) => `${namespace ?? ''}/${grantId}`;

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
  /** Expired JWT-use records deleted (grants/replay-ledger.ts). */
  prunedLedger?: number;
  /** ServiceAccounts labelled as grants that are not (namespace/name). */
  forged: string[];
  /** Namespaces that could not be listed this pass. */
  failedNamespaces: string[];
  /** Epoch ms: the earliest expiry still ahead among the grants and records seen (leader only). */
  nextExpiry?: number;
}

/** What a pass carries from namespace to namespace. */
interface PassState {
  now: number;
  records: ReadonlyMap<string, JwtUseRecord>;
  result: ReapPassResult;
  /** The grants (grantKey) that still exist, or may: their records stay. */
  present: Set<string>;
  /** Reaped grants, not counting unrecorded roots (never granted): for the live-grant gauge. */
  reapedGrants: number;
}

/** An expired grant the pass tries to delete, with its key and its backoff so far. */
type ExpiredGrant = { grant: ProvenGrant; key: string; b?: Backoff };

/** Brings the pass's next expiry forward to `t` when `t` is still ahead. */
function bringForward(result: ReapPassResult, now: number, t: number | undefined): void {
  if (t !== undefined && t > now) result.nextExpiry = Math.min(result.nextExpiry ?? Infinity, t);
}

export class Reaper {
  private readonly lease: LeaderLease;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  /** Per grant: consecutive failures and the pass number before which we do not try again. */
  private readonly backoff = new Map<string, Backoff>();
  private pass = 0;
  /** Per namespace, the forged ServiceAccounts (namespace/name/uid) already logged. */
  private readonly loggedForged = new Map<string, Set<string>>();
  /** Namespaces whose listing failed on the last pass (logged when that starts, and when it ends). */
  private readonly failing = new Set<string>();
  /** The grants (grantKey) that existed, or may have, at the end of the last pass. */
  private seen: ReadonlySet<string> = new Set();

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
      let next: number | undefined;
      const started = this.now();
      this.running = this.runOnce()
        .then((r) => void (next = r.nextExpiry))
        .catch((err: unknown) =>
          this.options.logger.warn('reaper pass failed', { error: describeK8sError(err) }),
        )
        .finally(() => {
          this.running = undefined;
          const delay = nextPassDelay({
            intervalMs: this.options.intervalSeconds * 1000,
            now: this.now(),
            nextExpiry: next,
            lastPassMs: this.now() - started,
          });
          if (this.timer) this.timer = setTimeout(tick, delay);
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
    const result: ReapPassResult = {
      leader: false,
      seen: 0,
      reaped: [],
      failed: [],
      forged: [],
      failedNamespaces: [],
    };
    result.leader = await this.lease.tryAcquireOrRenew();
    if (!result.leader) return result;
    const now = this.now();
    // Without the records nothing can be proven, so the pass stops here (and is logged by start()).
    const records = await listJwtUses(this.k8s, this.options.lease.namespace, this.pageSize);
    for (const r of records.values()) bringForward(result, now, r.grantExpiresAt);
    const pass: PassState = { now, records, result, present: new Set(), reapedGrants: 0 };
    for (const namespace of this.namespacesToVisit(records)) await this.visitNamespace(namespace, pass);
    this.options.metrics?.activeGrants.set(result.seen - pass.reapedGrants);
    this.options.metrics?.forgedGrants.set(result.forged.length);
    // Past expiry and still there (deletion failed, or waiting out its backoff): the alert's signal.
    this.options.metrics?.expiredGrants.set(result.failed.length);
    this.seen = pass.present;
    result.prunedLedger = await this.prune(records, pass.present, now);
    // Set by the leader only: the freshest value across replicas says when the last pass ended.
    this.options.metrics?.reaperLastPass.set(this.now() / 1000);
    return result;
  }

  /** One namespace of a pass: list its ServiceAccounts, prove its grants, delete the expired ones. */
  private async visitNamespace(namespace: string, pass: PassState): Promise<void> {
    const { records, now, result, present } = pass;
    // When the records already say many grants here have expired, the Roles and RoleBindings
    // are listed beside the ServiceAccounts rather than after them: with 1,000 expired grants
    // the listings are the part of the pass before its first deletion (docs/benchmarks.md).
    const early =
      expiredRecordsIn(records, namespace, now, this.seen) >= LIST_DEPENDENTS_FROM
        ? this.listDependents(namespace)
        : undefined;
    let items: ListedObject[];
    try {
      items = await listServiceAccounts(this.k8s, namespace, this.pageSize);
    } catch (err) {
      this.namespaceFailed(namespace, err, result);
      for (const r of records.values())
        if (r.namespace === namespace) present.add(grantKey(namespace, r.grantId));
      return;
    }
    if (this.failing.delete(namespace))
      this.options.logger.info('can read the namespace again', { namespace });
    const { proven, forged } = proveGrants(namespace, items, records, this.options.lease.namespace);
    this.reportForged(namespace, forged, result);
    const expired = this.tallyProven(namespace, proven, pass);
    // Many at once: one listing of the namespace's Roles and RoleBindings rather than four
    // reads per grant (if it fails, each grant reads its own).
    const known =
      expired.length >= LIST_DEPENDENTS_FROM ? await (early ?? this.listDependents(namespace)) : undefined;
    await this.reapExpired(namespace, expired, known, pass);
  }

  /**
   * Counts the namespace's proven grants into the pass (every recorded one into seen, present and
   * the next expiry; an expired one waiting out its backoff as failed) and returns the expired
   * ones to delete now.
   */
  private tallyProven(namespace: string, proven: ProvenGrant[], pass: PassState): ExpiredGrant[] {
    const { now, result, present } = pass;
    const expired: ExpiredGrant[] = [];
    for (const grant of proven) {
      const key = grantKey(namespace, grant.grantId);
      // An unrecorded root is no grant: it keeps no record, and does not bring the next pass forward
      // (anyone who may create ServiceAccounts could make one), so it waits for a pass at the interval.
      if (!grant.unrecorded) {
        present.add(key);
        result.seen += 1;
        bringForward(result, now, grant.expiresAt);
      }
      if (grant.expiresAt > now || grant.serviceAccount.metadata?.deletionTimestamp) continue;
      const b = this.backoff.get(key);
      if (b && this.pass < b.nextPass) {
        result.failed.push(grant.grantId);
        continue;
      }
      expired.push({ grant, key, b });
    }
    return expired;
  }

  /** Deletes the namespace's expired grants, several at a time, and counts them into the pass. */
  private async reapExpired(
    namespace: string,
    expired: ExpiredGrant[],
    known: KnownDependents | undefined,
    pass: PassState,
  ): Promise<void> {
    const concurrency = this.options.concurrency ?? REAP_CONCURRENCY;
    // What the bindings-first deletion leaves of the listing: what each grant's deletion then reads.
    const dependents = known && new Map(known);
    if (dependents) {
      // Every expired grant's RoleBindings first: the API server authorizes each of the pass's
      // calls by walking the namespace's RoleBindings (docs/benchmarks.md, finding 10), so the
      // other half of the deletions walks a shorter list, and every expired grant loses its
      // authorization early in the pass. A failure here is retried by the grant's own deletion.
      await forEachLimited(expired, concurrency, ({ grant }) =>
        deleteOwnedBindings(this.k8s, namespace, grant.grantId, grant.uid, dependents).catch(() => undefined),
      );
    }
    // Several grants at a time: one by one, each grant's dependent round trips made the lag
    // grow by ~30 ms per expired grant (30 s for 1,000; bench/, docs/benchmarks.md).
    await forEachLimited(expired, concurrency, async ({ grant, key, b }) => {
      if (await this.reap(namespace, grant, key, dependents, b)) {
        pass.present.delete(key);
        pass.result.reaped.push(grant.grantId);
        if (!grant.unrecorded) pass.reapedGrants += 1;
      } else {
        pass.result.failed.push(grant.grantId);
      }
    });
  }

  private get pageSize(): number {
    return this.options.listPageSize ?? LIST_PAGE_SIZE;
  }

  /** The namespace's Roles and RoleBindings named like grant objects; undefined (logged) when the listing fails. */
  private listDependents(namespace: string): Promise<KnownDependents | undefined> {
    return listDependents(this.k8s, namespace).catch((err: unknown) => {
      this.options.logger.warn(
        'cannot list the Roles and RoleBindings of a namespace; reading them per grant',
        {
          namespace,
          error: describeK8sError(err),
        },
      );
      return undefined;
    });
  }

  /** The policy's namespaces, plus those the records name: a grant outlives its namespace's place in the policy. */
  private namespacesToVisit(records: ReadonlyMap<string, JwtUseRecord>): string[] {
    const namespaces = new Set(this.options.namespaces());
    for (const r of records.values()) if (r.namespace) namespaces.add(r.namespace);
    return [...namespaces];
  }

  private namespaceFailed(namespace: string, err: unknown, result: ReapPassResult): void {
    result.failedNamespaces.push(namespace);
    this.options.metrics?.reapNamespaceFailures.inc({ namespace });
    if (this.failing.has(namespace)) return;
    this.failing.add(namespace);
    this.options.logger.error('cannot list the ServiceAccounts of a namespace; reaping the others', {
      namespace,
      error: describeK8sError(err),
    });
  }

  /** Logs each forged ServiceAccount once (per uid), not on every pass. */
  private reportForged(namespace: string, forged: ListedObject[], result: ReapPassResult): void {
    const before = this.loggedForged.get(namespace) ?? new Set<string>();
    const now = new Set<string>();
    for (const sa of forged) {
      const name = sa.metadata?.name ?? '';
      result.forged.push(`${namespace}/${name}`);
      const key = `${name}/${sa.metadata?.uid ?? ''}`;
      now.add(key);
      if (before.has(key)) continue;
      this.options.logger.warn(
        'a ServiceAccount is labelled as a grant but is not a grant of this broker; leaving it alone',
        { namespace, serviceAccount: name, serviceAccountUid: sa.metadata?.uid, labels: sa.metadata?.labels },
      );
    }
    this.loggedForged.set(namespace, now);
  }

  /** Deletes one proven, expired grant; false when it failed (retried with backoff). */
  private async reap(
    namespace: string,
    grant: ProvenGrant,
    key: string,
    known: KnownDependents | undefined,
    b?: Backoff,
  ): Promise<boolean> {
    const { grantId, uid, serviceAccount: sa } = grant;
    try {
      const deleted = await deleteGrantObjects(this.k8s, namespace, grantId, { ownedBy: uid, known }).catch(
        async (err: unknown) => {
          // A call that timed out may still have been applied: if the root is gone, so is the
          // grant (the garbage collector takes what it owned), and it must be audited now, since
          // no later pass will see it.
          if (await this.rootGone(namespace, grantId, uid)) return { notOwned: [] };
          throw err;
        },
      );
      for (const object of deleted.notOwned ?? [])
        this.options.logger.warn(
          'an object named after an expired grant is not owned by the grant; leaving it',
          {
            namespace,
            grantId,
            object,
          },
        );
      this.backoff.delete(key);
      // Anyone who may create ServiceAccounts can make an unrecorded root: not counted as a grant.
      if (!grant.unrecorded) this.options.metrics?.reaped.inc();
      this.options.audit.record({
        action: 'reap',
        grantId,
        namespace,
        serviceAccount: grantId,
        serviceAccountUid: uid,
        by: 'reaper',
        // Never granted: a root whose JWT-use record never landed (grant-proof.ts). It had no end, and
        // its labels and annotations are not the broker's word (anyone who may create ServiceAccounts
        // could write them).
        ...(grant.unrecorded
          ? { unrecorded: true }
          : {
              expiresAt: Number.isFinite(grant.expiresAt)
                ? rfc3339(new Date(grant.expiresAt))
                : sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION],
              labels: sa.metadata?.labels,
              annotations: sa.metadata?.annotations,
            }),
      });
      return true;
    } catch (err) {
      const failures = (b?.failures ?? 0) + 1;
      const wait = Math.min(2 ** (failures - 1), this.options.maxBackoffPasses ?? 8);
      this.backoff.set(key, { failures, nextPass: this.pass + wait });
      this.options.metrics?.reapFailures.inc();
      this.options.logger.error('could not reap an expired grant; will retry', {
        grantId,
        namespace,
        failures,
        error: describeK8sError(err),
      });
      return false;
    }
  }

  /** True only when the API server says this ServiceAccount (this uid) no longer exists. */
  private async rootGone(namespace: string, name: string, uid: string): Promise<boolean> {
    try {
      const sa = await this.k8s.core.readNamespacedServiceAccount({ name, namespace });
      return sa.metadata?.uid !== uid;
    } catch (err) {
      return isNotFound(err);
    }
  }

  /** Deletes the records that have expired and whose grant is gone. Returns how many. */
  private async prune(records: ReadonlyMap<string, JwtUseRecord>, present: ReadonlySet<string>, now: number) {
    let pruned = 0;
    for (const r of records.values()) {
      if (
        (Number.isFinite(r.keepUntil) && r.keepUntil > now) ||
        present.has(grantKey(r.namespace, r.grantId))
      )
        continue;
      try {
        await deleteJwtUse(this.k8s, this.options.lease.namespace, r.grantId);
        pruned += 1;
      } catch (err) {
        this.options.logger.warn('could not prune a JWT-use record; will retry', {
          grantId: r.grantId,
          error: describeK8sError(err),
        });
      }
    }
    return pruned;
  }
}
