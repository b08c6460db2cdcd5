// Keeps a replica's LiveGrants table current: one list-then-watch loop per job namespace on the
// grant ServiceAccounts (label selector of managed grants), and one on the JWT-use records in the
// broker's namespace. A revocation or reaping at any replica deletes the ServiceAccount; the watch
// event removes it here within the API server's watch latency (milliseconds), not the ~10 s the API
// server's own token cache takes. Lists are read in pages, each reduced to the table's small
// records before the next (kube/paged-list.ts): thousands of grants are never held as objects at once.
// From a failed watch until the source is listed afresh its namespace is "not synced" (events may
// have been missed), and the gateway refuses that namespace's grants (503) rather than trust a
// stale table. The set of namespaces follows the running policy: a namespace a reload adds is
// listed before the new policy takes over (watchAlso), and one it drops stops being watched after
// (watchOnly), its grants leaving the table.
import type { V1Lease, V1ServiceAccount } from '@kubernetes/client-node';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError } from '../kube/errors.js';
import { LEDGER_SELECTOR, jwtUseRecordOf, type JwtUseRecord } from '../grants/replay-ledger.js';
import { GRANT_LABEL, MANAGED_SELECTOR } from '../naming.js';
import type { Logger } from '../logger.js';
import { grantRecordOf, type GrantRecord, type LiveGrants } from './live-grants.js';
import { listReduced } from '../kube/paged-list.js';
import { OpenWatches, WATCH_SECONDS, growingPause, type Watcher } from '../kube/watches.js';

/** Grant ServiceAccounts: the managed-by label and a grant label. */
export const GRANT_SA_SELECTOR = `${MANAGED_SELECTOR},${GRANT_LABEL}`;
/** A watch that ends in error sooner than this after it started is failing, not expiring. */
export const QUICK_FAILURE_MS = 1_000;

/** `T`: the watched object; `R`: the little the table keeps of one. */
interface Source<T, R> {
  /** For logs: "namespace staging", "JWT-use records". */
  what: string;
  path: string;
  labelSelector: string;
  /** Every object, page by page, reduced to what is kept (kube/paged-list.ts). */
  list(): Promise<{ kept: R[]; resourceVersion: string | undefined }>;
  replace(kept: R[]): void;
  upsert(object: T): void;
  remove(object: T): void;
}

export interface GrantWatch {
  /** False while the source for this namespace (or the JWT-use records) cannot be trusted. */
  synced(namespace: string): boolean;
  /**
   * Starts watching those of these namespaces it does not watch yet, each listed first; when one
   * cannot be read this throws and watches none of them. Calls run one after another.
   */
  watchAlso(namespaces: readonly string[]): Promise<void>;
  /** Stops watching every namespace but these; their grants leave the table (their calls end). */
  watchOnly(namespaces: readonly string[]): void;
  stop(): void;
}

/** What a watch event carries: any object with its resourceVersion. */
type Versioned = { metadata?: { resourceVersion?: string } };

interface WatchContext {
  watcher: Watcher;
  synced: Map<string, boolean>;
  logger: Logger;
}

const LEDGER_KEY = '\0ledger';

function namespaceSource(
  k8s: Pick<K8sClients, 'core'>,
  table: LiveGrants,
  namespace: string,
  listPageSize: number | undefined,
): Source<V1ServiceAccount, GrantRecord> {
  return {
    what: `namespace ${namespace}`,
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
    labelSelector: GRANT_SA_SELECTOR,
    list: () =>
      listReduced(
        (page) =>
          k8s.core.listNamespacedServiceAccount({ namespace, labelSelector: GRANT_SA_SELECTOR, ...page }),
        (sa) => grantRecordOf(namespace, sa),
        listPageSize,
      ),
    replace: (grants) => table.replaceNamespace(namespace, grants),
    upsert: (sa) => table.upsertServiceAccount(namespace, sa),
    remove: (sa) => table.removeServiceAccount(sa),
  };
}

function ledgerSource(
  k8s: Pick<K8sClients, 'coordination'>,
  table: LiveGrants,
  brokerNamespace: string,
  listPageSize: number | undefined,
): Source<V1Lease, JwtUseRecord> {
  return {
    what: 'JWT-use records',
    path: `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(brokerNamespace)}/leases`,
    labelSelector: LEDGER_SELECTOR,
    list: () =>
      listReduced(
        (page) =>
          k8s.coordination.listNamespacedLease({
            namespace: brokerNamespace,
            labelSelector: LEDGER_SELECTOR,
            ...page,
          }),
        (lease) => jwtUseRecordOf(lease.metadata),
        listPageSize,
      ),
    replace: (records) => table.replaceRecords(new Map(records.map((record) => [record.grantId, record]))),
    upsert: (lease) => {
      const record = jwtUseRecordOf(lease.metadata);
      if (record) table.upsertRecord(record);
    },
    remove: (lease) => table.removeRecord(lease.metadata?.name ?? ''),
  };
}

/** Resolves when the server ends the watch; rejects on an error. */
function watchOnce<T extends Versioned, R>(
  ctx: WatchContext,
  watches: OpenWatches,
  source: Source<T, R>,
  from: { resourceVersion: string | undefined },
): Promise<void> {
  return watches.once(
    ctx.watcher,
    source.path,
    {
      labelSelector: source.labelSelector,
      resourceVersion: from.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: WATCH_SECONDS,
    },
    (type: string, object: T) => {
      // An ERROR (e.g. 410 Gone: the version is too old) ends the watch, and the loop lists afresh.
      if (type === 'ADDED' || type === 'MODIFIED') source.upsert(object);
      else if (type === 'DELETED') source.remove(object);
      from.resourceVersion = object.metadata?.resourceVersion ?? from.resourceVersion;
    },
  );
}

async function listInto<T, R>(ctx: WatchContext, key: string, source: Source<T, R>) {
  const { kept, resourceVersion } = await source.list();
  source.replace(kept);
  ctx.synced.set(key, true);
  return { resourceVersion };
}

/** Lists afresh until it works or the watches stop (the source is not synced meanwhile). */
async function relist<T, R>(
  ctx: WatchContext,
  watches: OpenWatches,
  key: string,
  source: Source<T, R>,
  pause: () => Promise<void>,
): Promise<{ resourceVersion: string | undefined } | undefined> {
  let told = false;
  while (!watches.stopped) {
    try {
      return await listInto(ctx, key, source);
    } catch (err) {
      if (watches.stopped) return undefined;
      if (!told)
        ctx.logger.error('gateway cannot read grants; refusing them until it can', {
          source: source.what,
          error: describeK8sError(err),
        });
      told = true;
      ctx.synced.set(key, false);
      await pause();
    }
  }
  return undefined;
}

// One loop per source: watch on from the last version; when a watch fails, list afresh (the
// source counts as not synced until that succeeds), with a growing pause while it keeps failing.
async function follow<T extends Versioned, R>(
  ctx: WatchContext,
  watches: OpenWatches,
  key: string,
  source: Source<T, R>,
  from: { resourceVersion: string | undefined },
): Promise<void> {
  const { pause, reset } = growingPause();
  while (!watches.stopped) {
    const started = Date.now();
    try {
      await watchOnce(ctx, watches, source, from);
      reset();
      continue;
    } catch (err) {
      if (watches.stopped) return;
      ctx.logger.warn('gateway watch failed; listing again', {
        source: source.what,
        error: describeK8sError(err),
      });
      // Events may have been missed since the watch last delivered one (a revocation among them):
      // the source is not trusted until it is listed afresh.
      ctx.synced.set(key, false);
      // A watch that fails at once (e.g. no `watch` permission) would otherwise loop list/watch
      // without pause.
      if (Date.now() - started < QUICK_FAILURE_MS) await pause();
    }
    const listed = await relist(ctx, watches, key, source, pause);
    if (listed) Object.assign(from, listed);
  }
}

/** Lists the source (throws when it cannot be read), then follows it until the returned watches stop. */
async function startSource<T extends Versioned, R>(
  ctx: WatchContext,
  key: string,
  source: Source<T, R>,
): Promise<OpenWatches> {
  let first;
  try {
    first = await listInto(ctx, key, source);
  } catch (err) {
    throw new Error(
      `the gateway cannot list ${source.what} (${describeK8sError(err)}); the broker needs list and watch on them (deploy/)`,
      { cause: err },
    );
  }
  const watches = new OpenWatches();
  void follow(ctx, watches, key, source, first);
  return watches;
}

/** Lists every source once (throws if one cannot be read), then keeps watching them. */
export async function startGrantWatch(
  k8s: Pick<K8sClients, 'core' | 'coordination' | 'watcher'>,
  table: LiveGrants,
  options: {
    namespaces: readonly string[];
    brokerNamespace: string;
    logger: Logger;
    /** Objects per list page (paged-list.ts); the tests make it small to see the pages. */
    listPageSize?: number;
  },
): Promise<GrantWatch> {
  const ctx: WatchContext = { watcher: k8s.watcher, synced: new Map(), logger: options.logger };
  /** namespace → its running watches (the ledger's are apart: they never change). */
  const running = new Map<string, OpenWatches>();
  let stopped = false;
  const stopAll = (all: Iterable<OpenWatches>) => {
    for (const watches of all) watches.stop();
  };

  /** Starts the given namespaces' sources; when one cannot be listed, stops those it started. */
  const add = async (namespaces: readonly string[]) => {
    const started = await Promise.allSettled(
      namespaces.map((ns) => startSource(ctx, ns, namespaceSource(k8s, table, ns, options.listPageSize))),
    );
    const failed = started.find((r) => r.status === 'rejected');
    const ok = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed || stopped) {
      stopAll(ok);
      for (const ns of namespaces) if (!running.has(ns)) ctx.synced.delete(ns);
      if (failed) throw failed.reason;
      return;
    }
    namespaces.forEach((ns, i) => running.set(ns, ok[i]!));
  };
  const drop = (namespace: string) => {
    running.get(namespace)?.stop();
    running.delete(namespace);
    ctx.synced.delete(namespace);
    table.replaceNamespace(namespace, []);
  };

  const ledger = await startSource(
    ctx,
    LEDGER_KEY,
    ledgerSource(k8s, table, options.brokerNamespace, options.listPageSize),
  );
  try {
    await add(options.namespaces);
  } catch (err) {
    ledger.stop();
    throw err;
  }
  /** The running watchAlso: the next one waits for it, so a namespace is never started twice. */
  let adding: Promise<void> = Promise.resolve();
  return {
    synced: (namespace) => ctx.synced.get(namespace) === true && ctx.synced.get(LEDGER_KEY) === true,
    watchAlso(namespaces) {
      const next = adding.then(() => add([...new Set(namespaces)].filter((ns) => !running.has(ns))));
      adding = next.catch(() => undefined);
      return next;
    },
    watchOnly(namespaces) {
      const wanted = new Set(namespaces);
      for (const ns of [...running.keys()]) if (!wanted.has(ns)) drop(ns);
    },
    stop: () => {
      stopped = true;
      ledger.stop();
      stopAll(running.values());
      running.clear();
    },
  };
}
