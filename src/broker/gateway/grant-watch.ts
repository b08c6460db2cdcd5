// Keeps a replica's LiveGrants table current: one list-then-watch loop per job namespace on the
// grant ServiceAccounts (label selector of managed grants), and one on the JWT-use records in the
// broker's namespace. A revocation or reaping at any replica deletes the ServiceAccount; the watch
// event removes it here within the API server's watch latency (milliseconds), not the ~10 s the API
// server's own token cache takes. Lists are read in pages, each reduced to the table's small
// records before the next (paged-list.ts): thousands of grants are never held as objects at once.
// While a source cannot be read its namespace is "not synced" and the gateway refuses that
// namespace's grants (503) rather than trust a stale table.
import { Watch, type KubeConfig, type V1Lease, type V1ServiceAccount } from '@kubernetes/client-node';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError } from '../kube/errors.js';
import { LEDGER_SELECTOR, jwtUseRecordOf, type JwtUseRecord } from '../grants/replay-ledger.js';
import { GRANT_LABEL, MANAGED_SELECTOR } from '../naming.js';
import type { Logger } from '../logger.js';
import { grantRecordOf, type GrantRecord, type LiveGrants } from './live-grants.js';
import { listReduced } from './paged-list.js';
import { OpenWatches, WATCH_SECONDS, growingPause } from '../kube/watches.js';

/** Grant ServiceAccounts: the managed-by label and a grant label. */
export const GRANT_SA_SELECTOR = `${MANAGED_SELECTOR},${GRANT_LABEL}`;
/** A watch that ends in error sooner than this after it started is failing, not expiring. */
const QUICK_FAILURE_MS = 1_000;

/** `T`: the watched object; `R`: the little the table keeps of one. */
interface Source<T, R> {
  /** For logs: "namespace staging", "JWT-use records". */
  what: string;
  path: string;
  labelSelector: string;
  /** Every object, page by page, reduced to what is kept (paged-list.ts). */
  list(): Promise<{ kept: R[]; resourceVersion: string | undefined }>;
  replace(kept: R[]): void;
  upsert(object: T): void;
  remove(object: T): void;
}

export interface GrantWatch {
  /** False while the source for this namespace (or the JWT-use records) cannot be trusted. */
  synced(namespace: string): boolean;
  stop(): void;
}

/** Lists every source once (throws if one cannot be read), then keeps watching them. */
export async function startGrantWatch(
  kc: KubeConfig,
  k8s: Pick<K8sClients, 'core' | 'coordination'>,
  table: LiveGrants,
  options: {
    namespaces: readonly string[];
    brokerNamespace: string;
    logger: Logger;
    /** Objects per list page (paged-list.ts); the tests make it small to see the pages. */
    listPageSize?: number;
  },
): Promise<GrantWatch> {
  const synced = new Map<string, boolean>();
  const LEDGER_KEY = '\0ledger';
  const watches = new OpenWatches();
  const watcher = new Watch(kc);

  const sources: [string, Source<V1ServiceAccount, GrantRecord> | Source<V1Lease, JwtUseRecord>][] =
    options.namespaces.map((namespace) => [
      namespace,
      {
        what: `namespace ${namespace}`,
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
        labelSelector: GRANT_SA_SELECTOR,
        list: () =>
          listReduced(
            (page) =>
              k8s.core.listNamespacedServiceAccount({ namespace, labelSelector: GRANT_SA_SELECTOR, ...page }),
            (sa) => grantRecordOf(namespace, sa),
            options.listPageSize,
          ),
        replace: (grants: GrantRecord[]) => table.replaceNamespace(namespace, grants),
        upsert: (sa: V1ServiceAccount) => table.upsertServiceAccount(namespace, sa),
        remove: (sa: V1ServiceAccount) => table.removeServiceAccount(sa),
      } satisfies Source<V1ServiceAccount, GrantRecord>,
    ]);
  sources.push([
    LEDGER_KEY,
    {
      what: 'JWT-use records',
      path: `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.brokerNamespace)}/leases`,
      labelSelector: LEDGER_SELECTOR,
      list: () =>
        listReduced(
          (page) =>
            k8s.coordination.listNamespacedLease({
              namespace: options.brokerNamespace,
              labelSelector: LEDGER_SELECTOR,
              ...page,
            }),
          (lease) => jwtUseRecordOf(lease.metadata),
          options.listPageSize,
        ),
      replace: (records: JwtUseRecord[]) =>
        table.replaceRecords(new Map(records.map((record) => [record.grantId, record]))),
      upsert: (lease: V1Lease) => {
        const record = jwtUseRecordOf(lease.metadata);
        if (record) table.upsertRecord(record);
      },
      remove: (lease: V1Lease) => table.removeRecord(lease.metadata?.name ?? ''),
    } satisfies Source<V1Lease, JwtUseRecord>,
  ]);

  /** Resolves when the server ends the watch; rejects on an error. */
  const watchOnce = <T extends { metadata?: { resourceVersion?: string } }>(
    source: Source<T, unknown>,
    from: { resourceVersion: string | undefined },
  ): Promise<void> =>
    watches.once(
      watcher,
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

  const listInto = async <T, R>(key: string, source: Source<T, R>) => {
    const { kept, resourceVersion } = await source.list();
    source.replace(kept);
    synced.set(key, true);
    return { resourceVersion };
  };

  // One loop per source: watch on from the last version; when a watch fails, list afresh (the
  // source counts as not synced until that succeeds), with a growing pause while it keeps failing.
  const follow = async <T extends { metadata?: { resourceVersion?: string } }, R>(
    key: string,
    source: Source<T, R>,
    from: { resourceVersion: string | undefined },
  ) => {
    const { pause, reset } = growingPause();
    while (!watches.stopped) {
      const started = Date.now();
      try {
        await watchOnce(source, from);
        reset();
        continue;
      } catch (err) {
        if (watches.stopped) return;
        options.logger.warn('gateway watch failed; listing again', {
          source: source.what,
          error: describeK8sError(err),
        });
        // A watch that fails at once (e.g. no `watch` permission) would otherwise loop list/watch
        // without pause; while it keeps failing the table is not current, so it does not count.
        if (Date.now() - started < QUICK_FAILURE_MS) {
          synced.set(key, false);
          await pause();
        }
      }
      while (!watches.stopped) {
        try {
          Object.assign(from, await listInto(key, source));
          break;
        } catch (err) {
          if (watches.stopped) return;
          if (synced.get(key))
            options.logger.error('gateway cannot read grants; refusing them until it can', {
              source: source.what,
              error: describeK8sError(err),
            });
          synced.set(key, false);
          await pause();
        }
      }
    }
  };

  const first = await Promise.all(
    sources.map(async ([key, source]) => {
      try {
        return await listInto(key, source as Source<unknown, unknown>);
      } catch (err) {
        throw new Error(
          `the gateway cannot list ${source.what} (${describeK8sError(err)}); the broker needs list and watch on them (deploy/)`,
          { cause: err },
        );
      }
    }),
  );
  sources.forEach(
    ([key, source], i) => void follow(key, source as Source<V1ServiceAccount, unknown>, first[i]!),
  );

  return {
    synced: (namespace) => synced.get(namespace) === true && synced.get(LEDGER_KEY) === true,
    stop: () => watches.stop(),
  };
}
