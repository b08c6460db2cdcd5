// 1. Exchange latency and throughput at several concurrencies, beside the floor (the same
// Kubernetes writes made directly, sequentially and with independent calls in parallel) and the
// bare minimum (ServiceAccount → [RoleBinding ∥ TokenRequest]). At concurrency 1 also the exchange
// of an inline role. Broker and floor runs are interleaved, in a rotating order, so drift on a
// noisy machine hits all of them; every kind is warmed up first (warmUp), and every batch starts
// on a quiet API server and broker, after the previous batch's grants are deleted (clearAndSettle).
import {
  INLINE_ROLE,
  processCpuMs,
  type BenchBroker,
  type BenchContext,
  type Scenario,
} from '../lib/context.js';
import type { FloorShape } from '../lib/grant-floor.js';
import { PART_LABEL } from '../../src/broker/naming.js';
import { closedLoop, median, summarize, type LatencySummary } from '../lib/stats.js';
import { waitForQuiet } from '../lib/control-plane-cpu.js';
import { batchCount } from '../lib/settings.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One run as a log line. */
export const describeRun = (kind: string, run: ExchangeRun): string =>
  `${kind.padEnd(10)} p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms, ${run.throughput.toFixed(1)}/s, CPU/grant: API server ${run.apiServerCpuMs.toFixed(1)} ms, broker ${run.brokerCpuMs.toFixed(1)} ms`;

/** `inline`: the broker, for a role whose rules the policy writes out (concurrency 1 only). */
export type ExchangeKind = 'broker' | 'inline' | FloorShape;
/** The kinds of the exchange table (the `shared` and `gateway` floors run in scenarios/write-sets.ts). */
type EveryKind = 'broker' | Exclude<FloorShape, 'shared' | 'gateway'>;
export const EXCHANGE_KINDS: EveryKind[] = ['broker', 'parallel', 'sequential', 'bare'];
type TableKind = EveryKind | 'inline';
const kindsAt = (c: number): TableKind[] => (c === 1 ? [...EXCHANGE_KINDS, 'inline'] : EXCHANGE_KINDS);

/** One value per kind; `inline` only where it ran (concurrency 1). */
export type PerKind<T> = Record<EveryKind, T> & { inline?: T };

export interface ExchangeRun extends LatencySummary {
  throughput: number;
  /**
   * CPU time per grant (ms) of the API server process (with its etcd) and of the broker, from the
   * batch's start until every object of it exists (the self-revoke pairs included).
   */
  apiServerCpuMs: number;
  brokerCpuMs: number;
}

export interface ExchangeResults {
  /** runs[concurrency][kind] = one entry per repetition. */
  runs: Record<number, PerKind<ExchangeRun[]>>;
  /** Median over repetitions of each figure. */
  medians: Record<number, PerKind<ExchangeRun>>;
  /** Per repetition broker/parallel-floor ratios, then their median. */
  p50RatioParallel: Record<number, number>;
  p50RatioSequential: Record<number, number>;
  throughputRatioParallel: Record<number, number>;
  /** Per repetition parallel-floor/bare-floor throughput, then the median: what the write set costs. */
  floorThroughputRatioBare: Record<number, number>;
  /** Per repetition inline/named broker p50 at concurrency 1, then the median. */
  inlineP50RatioC1?: number;
  exchangesPerRun: Record<number, number>;
  /** The broker's warm-up after its start (warmUp): its first exchanges, at concurrency 32. */
  coldStart?: ExchangeRun;
}

/** The median of each figure over repeated runs of one kind. */
export const medianRun = (runs: ExchangeRun[]): ExchangeRun => ({
  n: runs[0]?.n ?? 0,
  p50: median(runs.map((r) => r.p50)),
  p95: median(runs.map((r) => r.p95)),
  p99: median(runs.map((r) => r.p99)),
  max: median(runs.map((r) => r.max)),
  throughput: median(runs.map((r) => r.throughput)),
  apiServerCpuMs: median(runs.map((r) => r.apiServerCpuMs)),
  brokerCpuMs: median(runs.map((r) => r.brokerCpuMs)),
});

/**
 * Runs `count` exchanges (broker kinds: through `bb`, and in direct mode until every self-revoke
 * binding of them exists) or floor grants for `target`, `concurrency` at a time, in `ns`; latencies
 * and wall time. `onStart` is called when everything is ready and the first grant is about to go out
 * (measuredBatch starts its CPU figures there).
 */
export function exchangeBatcher(ctx: BenchContext, bb: BenchBroker, ns: string, target = ctx.target(ns)) {
  // Gateway mode makes no self-revoke objects (src/broker/grants/grant-kinds.ts).
  const selfRevokes = bb.gatewayUrl === undefined;
  const body = ctx.exchangeBody(ns);
  const inlineBody = ctx.exchangeBody(ns, INLINE_ROLE);
  const selfRevokeBindings = async () => {
    const sel = encodeURIComponent(`${PART_LABEL}=revoke`);
    const path = `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings?labelSelector=${sel}`;
    return (await ctx.adminKube.json<{ items: unknown[] }>('GET', path)).items.length;
  };
  return async (kind: ExchangeKind, count: number, concurrency: number, onStart = () => {}) => {
    if (kind === 'broker' || kind === 'inline') {
      const tokens = await ctx.presign(count);
      const b = kind === 'inline' ? inlineBody : body;
      const before = selfRevokes ? await selfRevokeBindings() : 0;
      // The floor's client keeps its connections to the API server for 30 s, but the broker's server
      // closes an idle one after 5 s (src/broker/net/server.ts), so after the clearing between
      // batches every broker batch began with `concurrency` TLS handshakes the floor never paid.
      await bb.client.openConnections(concurrency);
      onStart();
      const result = await closedLoop(count, concurrency, (i) => bb.client.exchange(tokens[i]!, b)).catch(
        async (err: unknown) => {
          // Say whether the broker died (and its last log lines: it never logs secrets).
          const exit = await Promise.race([
            bb.broker.exited.then((code) => `exited with ${code}`),
            sleep(500).then(() => 'still running'),
          ]);
          throw new Error(`${String(err)}; broker ${exit}: ${bb.broker.stderr.slice(-10).join('\n')}`, {
            cause: err,
          });
        },
      );
      // The broker finishes the self-revoke pairs after its answers: wait for them (a few reads
      // at the end, whose CPU counts against the broker), so the CPU figures cover whole grants.
      const deadline = Date.now() + 60_000;
      while (selfRevokes && (await selfRevokeBindings()) < before + count) {
        if (Date.now() > deadline)
          throw new Error(
            `the self-revoke pairs did not all appear within 60 s; the broker's last errors: ${bb.broker.stderr
              .filter((l) => l.includes('"level":"error"'))
              .slice(-5)
              .join('\n')}`,
          );
        await sleep(50);
      }
      return result;
    }
    // The self-revoke pairs finish after the timed answers, as the broker's do.
    const trailing: Promise<void>[] = [];
    onStart();
    const result = await closedLoop(count, concurrency, async () => {
      const g = await ctx.floorGrant(target, kind);
      trailing.push(g.settled);
      return g;
    });
    await Promise.all(trailing);
    return result;
  };
}

const WARMUP_CONCURRENCY = 32;

/**
 * Brings each kind to the state it serves in: a broker in service has answered thousands of
 * exchanges, a fresh one answers its first hundreds with its JIT still compiling (at concurrency 32
 * about 4.6 ms of broker CPU per grant in its first 192 exchanges, 3.1 in the next 192, 1.8–2.1
 * after 600: docs/benchmarks.md, finding 27). So every broker compared with a floor first answers
 * `count` exchanges at concurrency 32 after it starts, and each floor kind makes as many grants once
 * (the minimal client's code warms up too). The broker's warm-up is measured: its CPU per grant is
 * the cold start the report shows beside the warm figures. Ends with the namespace cleared and quiet.
 */
export async function warmUp(
  ctx: BenchContext,
  bb: BenchBroker,
  batch: ReturnType<typeof exchangeBatcher>,
  kinds: readonly ExchangeKind[],
  m: { count: number; namespace: string },
): Promise<ExchangeRun | undefined> {
  let cold: ExchangeRun | undefined;
  for (const kind of kinds) {
    if (kind === 'broker') cold = await measuredBatch(ctx, bb, batch, kind, m.count, WARMUP_CONCURRENCY);
    else await batch(kind, m.count, WARMUP_CONCURRENCY);
  }
  await clearAndSettle(ctx, bb, m.namespace);
  return cold;
}

/**
 * Deletes the namespace's grants and waits until the API server and the broker are quiet: the
 * deletions go on after the clearing returns (the garbage collector at the API server, a gateway's
 * watch events at the broker), and the next batch must not pay for them.
 */
export async function clearAndSettle(ctx: BenchContext, bb: BenchBroker, namespace: string): Promise<void> {
  await ctx.clearGrants(namespace);
  await waitForQuiet(ctx.apiServerPid);
  await waitForQuiet(bb.pid);
}

/** One measured batch: its latency summary, throughput and CPU per grant. */
export async function measuredBatch(
  ctx: BenchContext,
  bb: BenchBroker,
  batch: ReturnType<typeof exchangeBatcher>,
  kind: ExchangeKind,
  count: number,
  c: number,
): Promise<ExchangeRun> {
  let cpuBefore: number[] = [];
  const { latencies, wallMs } = await batch(kind, count, c, () => {
    cpuBefore = [processCpuMs(ctx.apiServerPid), processCpuMs(bb.pid)];
  });
  const [apiServerCpuMs, brokerCpuMs] = [ctx.apiServerPid, bb.pid].map(
    (pid, i) => (processCpuMs(pid) - cpuBefore[i]!) / count,
  ) as [number, number];
  return { ...summarize(latencies), throughput: (count / wallMs) * 1000, apiServerCpuMs, brokerCpuMs };
}

export const runExchangeBench: Scenario<ExchangeResults> = async (ctx, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const bb = await ctx.startBroker([ns], { inlineRole: true });
  try {
    const batch = exchangeBatcher(ctx, bb, ns);
    const warmKinds = [...EXCHANGE_KINDS, ...(settings.concurrencies.includes(1) ? ['inline' as const] : [])];
    const coldStart = await warmUp(ctx, bb, batch, warmKinds, { count: settings.warmupCount, namespace: ns });
    if (coldStart) log(`  warm-up ${describeRun('broker', coldStart)} (its first exchanges after start)`);
    const results: ExchangeResults = {
      coldStart,
      runs: {},
      medians: {},
      p50RatioParallel: {},
      p50RatioSequential: {},
      throughputRatioParallel: {},
      floorThroughputRatioBare: {},
      exchangesPerRun: {},
    };
    for (const c of settings.concurrencies) {
      const count = batchCount(settings, c);
      results.exchangesPerRun[c] = count;
      // Warm-up at this concurrency: connection pools on both sides.
      const kinds = kindsAt(c);
      for (const kind of kinds) await batch(kind, Math.max(c, 4), c);
      await clearAndSettle(ctx, bb, ns);
      const runs: PerKind<ExchangeRun[]> = { broker: [], parallel: [], sequential: [], bare: [] };
      if (c === 1) runs.inline = [];
      for (let rep = 0; rep < settings.ratioReps; rep += 1) {
        const order = kinds.map((_, i) => kinds[(i + rep) % kinds.length]!);
        for (const kind of order) {
          const run = await measuredBatch(ctx, bb, batch, kind, count, c);
          runs[kind]!.push(run);
          log(`  c=${c} rep ${rep + 1}/${settings.ratioReps} ${describeRun(kind, run)}`);
          await clearAndSettle(ctx, bb, ns);
        }
      }
      results.runs[c] = runs;
      results.medians[c] = {
        broker: medianRun(runs.broker),
        parallel: medianRun(runs.parallel),
        sequential: medianRun(runs.sequential),
        bare: medianRun(runs.bare),
        ...(runs.inline && { inline: medianRun(runs.inline) }),
      };
      const perRep = (f: (i: number) => number) => median(runs.broker.map((_, i) => f(i)));
      results.p50RatioParallel[c] = perRep((i) => runs.broker[i]!.p50 / runs.parallel[i]!.p50);
      results.p50RatioSequential[c] = perRep((i) => runs.broker[i]!.p50 / runs.sequential[i]!.p50);
      results.throughputRatioParallel[c] = perRep(
        (i) => runs.broker[i]!.throughput / runs.parallel[i]!.throughput,
      );
      results.floorThroughputRatioBare[c] = perRep(
        (i) => runs.parallel[i]!.throughput / runs.bare[i]!.throughput,
      );
      const inline = runs.inline;
      if (inline) results.inlineP50RatioC1 = perRep((i) => inline[i]!.p50 / runs.broker[i]!.p50);
    }
    return results;
  } finally {
    await bb.stop();
  }
};
