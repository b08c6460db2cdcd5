// 3b. The reaper's lag after expiry with many expired grants. N complete grants (the broker's exact
// objects, bench/lib/grant-floor.ts) are created so that all expire at the same whole second T,
// while the real broker runs with its reaper every second. A watch on the ServiceAccounts (the
// grant roots) timestamps each deletion; lag = deletion time - T. The broker's RBAC does the work.
import { readdirSync, readFileSync } from 'node:fs';
import { processCpuMs, type BenchContext, type Scenario } from '../lib/context.js';
import type { GrantTarget } from '../lib/grant-floor.js';
import { closedLoop, percentile } from '../lib/stats.js';
import type { ExchangeResults } from './exchange.js';

export interface ReaperResults {
  grants: number;
  reaperIntervalSeconds: number;
  creationSeconds: number;
  firstMs: number;
  p50Ms: number;
  lastMs: number;
  /** Grants deleted per second once the reaper got going. */
  reapRate: number;
  /** Grant objects (RoleBindings, Roles) still present after every root was gone. */
  leftovers: number;
}

const REAPER_INTERVAL_SECONDS = 1;
const CREATE_CONCURRENCY = 32;
/** Tries at creating every grant before the common expiry, each with a larger margin. */
const MAX_ATTEMPTS = 3;

interface CommonExpiryBatch {
  names: string[];
  expiresAtMs: number;
  creationSeconds: number;
  /** Creation ended less than half a second before the expiry: the lag would be measured wrong. */
  ranPast: boolean;
}

/** Creates `n` complete grants that all expire at the same whole second, `budgetMs` from now. */
async function createWithCommonExpiry(
  ctx: BenchContext,
  target: GrantTarget,
  n: number,
  budgetMs: number,
): Promise<CommonExpiryBatch> {
  const expiresAtMs = Math.ceil((Date.now() + budgetMs) / 1000) * 1000;
  const names: string[] = [];
  const created = Date.now();
  await closedLoop(n, CREATE_CONCURRENCY, async () => {
    const g = await ctx.floorGrant(target, 'parallel', new Date(expiresAtMs));
    await g.settled;
    names.push(g.grantId);
  });
  const creationSeconds = (Date.now() - created) / 1000;
  return { names, expiresAtMs, creationSeconds, ranPast: Date.now() > expiresAtMs - 500 };
}

export const runReaperBench: Scenario<ReaperResults, [ExchangeResults | undefined]> = async (
  ctx,
  settings,
  log,
  exchange,
) => {
  const ns = ctx.namespaces.reap;
  const n = settings.reapGrants;
  const target = ctx.target(ns);
  const bb = await ctx.startBroker([ns], { reaperIntervalSeconds: REAPER_INTERVAL_SECONDS });
  const deletedAt = new Map<string, number>();
  const sel = encodeURIComponent('app.kubernetes.io/managed-by=k8s-ephemeral-access');
  const stopWatch = ctx.adminKube.watch(
    `/api/v1/namespaces/${ns}/serviceaccounts?watch=1&labelSelector=${sel}`,
    (type, object) => {
      const name = (object.metadata as { name?: string } | undefined)?.name;
      if (type === 'DELETED' && name && !deletedAt.has(name)) deletedAt.set(name, Date.now());
    },
  );
  try {
    // Expiry far enough ahead that creation finishes first. The first margin comes from this run's
    // floor; a busy machine can be slower than that, so a run past the expiry is cleared and tried
    // again with a margin from the creation time it just measured.
    let budgetMs = (n / (exchange?.medians[32]?.parallel.throughput ?? 20)) * 2000 + 5000;
    let batch = await createWithCommonExpiry(ctx, target, n, budgetMs);
    for (let attempt = 1; batch.ranPast; attempt++) {
      if (attempt === MAX_ATTEMPTS)
        throw new Error(
          `grant creation ran past the common expiry ${attempt} times, the last with a ${Math.round(budgetMs / 1000)} s margin`,
        );
      budgetMs = Math.max(budgetMs * 2, batch.creationSeconds * 2000 + 5000);
      log(
        `  creation took ${batch.creationSeconds.toFixed(1)} s, past the common expiry: cleared, trying again with a ${Math.round(budgetMs / 1000)} s margin`,
      );
      await ctx.clearGrants(ns);
      batch = await createWithCommonExpiry(ctx, target, n, budgetMs);
    }
    const { names, expiresAtMs, creationSeconds } = batch;
    log(
      `  created ${n} grants in ${creationSeconds.toFixed(1)} s; all expire at ${new Date(expiresAtMs).toISOString()}`,
    );
    if ([...deletedAt.keys()].some((k) => names.includes(k)))
      throw new Error('a grant was reaped before its expiry');

    // CPU from the common expiry to the last deletion: where the lag goes (API server with its
    // etcd, the controller-manager whose garbage collector sees every deletion, the broker).
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAtMs - Date.now())));
    const pids = { apiServer: ctx.apiServerPid, controllers: childPids(ctx.apiServerPid), broker: bb.pid };
    const cpuAt = () => ({
      apiServer: processCpuMs(pids.apiServer),
      controllers: pids.controllers.reduce((sum, pid) => sum + processCpuMs(pid), 0),
      broker: processCpuMs(pids.broker),
    });
    const cpuBefore = cpuAt();
    const deadline = expiresAtMs + 10 * 60_000;
    while (names.some((g) => !deletedAt.has(g))) {
      if (Date.now() > deadline)
        throw new Error('the reaper did not delete every expired grant within 10 minutes');
      await new Promise((r) => setTimeout(r, 100));
    }
    const cpuAfter = cpuAt();
    const lags = names.map((g) => deletedAt.get(g)! - expiresAtMs);
    const first = Math.min(...lags);
    const last = Math.max(...lags);
    const listed = async (kind: string) =>
      (
        await ctx.adminKube.json<{ items: unknown[] }>(
          'GET',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${kind}?labelSelector=${sel}`,
        )
      ).items.length;
    const leftovers = (await listed('rolebindings')) + (await listed('roles'));
    const result: ReaperResults = {
      grants: n,
      reaperIntervalSeconds: REAPER_INTERVAL_SECONDS,
      creationSeconds,
      firstMs: first,
      p50Ms: percentile(lags, 50),
      lastMs: last,
      reapRate: last > first ? (n / (last - first)) * 1000 : NaN,
      leftovers,
    };
    log(
      `  reaped: first after ${first} ms, median ${result.p50Ms} ms, last after ${last} ms (${result.reapRate.toFixed(1)} grants/s); leftovers ${leftovers}`,
    );
    const perGrant = (k: keyof typeof cpuAfter) => ((cpuAfter[k] - cpuBefore[k]) / n).toFixed(1);
    log(
      `  CPU per grant from expiry to the last deletion: API server ${perGrant('apiServer')} ms, controller-manager ${perGrant('controllers')} ms, broker ${perGrant('broker')} ms`,
    );
    return result;
  } finally {
    stopWatch();
    await bb.stop();
    await ctx.clearGrants(ns);
  }
};

/** The child processes of `pid` (the controller-manager under the control plane's process), from /proc. */
function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // After "pid (comm) ": the state, then the parent's pid.
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
