// 1b. The write set of each kind of grant, in one run: direct mode with the per-grant self-revoke
// pair (a Role and its RoleBinding: two RBAC escalation checks), direct mode with one RoleBinding to
// the namespace's shared self-revoke Role under its admission guard (deploy/self-revoke-guard.yaml;
// src/broker/grants/shared-self-revoke.ts), and gateway mode (no self-revoke objects; the token for
// the gateway's audience). For the direct sets the guard and the broker's permission to read it are
// installed, and one direct-mode broker switches between its two mechanisms as the guard's binding is
// set to Deny (shared) or Warn (pair); a gateway-mode broker runs for the gateway's batches only (a
// gateway watches every grant of its namespaces, the other sets' included). Each repetition runs the
// sets (all three, or BENCH_WRITE_SETS's) in a rotating order: the broker, its floor (the same writes
// from the minimal client: `parallel`, `shared` or `gateway`) and the bare minimum, at concurrency 1
// and 32. Per batch: p50, throughput, API server and broker CPU per grant (scenarios/exchange.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { gatewayTokenAudience } from '../../src/broker/gateway/start-gateway.js';
import { kubectlAdmin, tryKubectlAdmin } from '../../test/support/cluster.js';
import { selfRevokeGuardReaderFor, setSelfRevokeGuardActions } from '../../test/support/deploy-rbac.js';
import { repoRoot } from '../../test/support/repo-root.js';
import type { BenchBroker, BenchContext, Scenario } from '../lib/context.js';
import { WRITE_SETS, batchCount, type BenchSettings, type WriteSet } from '../lib/settings.js';
import { median } from '../lib/stats.js';
import {
  describeRun,
  clearAndSettle,
  exchangeBatcher,
  measuredBatch,
  medianRun,
  warmUp,
  type ExchangeKind,
  type ExchangeRun,
} from './exchange.js';

export { WRITE_SETS, type WriteSet } from '../lib/settings.js';
/** The brokers the write sets run on: one direct-mode broker for both direct sets, and the gateway's. */
export const BROKER_MODES = ['direct', 'gateway'] as const;
export type BrokerMode = (typeof BROKER_MODES)[number];
const brokerModeOf = (w: WriteSet): BrokerMode => (w === 'gateway' ? 'gateway' : 'direct');
export const WRITE_SET_CONCURRENCIES = [1, 32];
/** What runs per write set and concurrency: the broker, its floor, and the bare minimum. */
export const WRITE_SET_KINDS: Record<WriteSet, ExchangeKind[]> = {
  pair: ['broker', 'parallel', 'bare'],
  shared: ['broker', 'shared', 'bare'],
  gateway: ['broker', 'gateway', 'bare'],
};

type PerConcurrency<T> = Record<number, T>;

export interface WriteSetResults {
  /** runs[writeSet][concurrency][kind]: one per repetition. */
  runs: Record<WriteSet, PerConcurrency<Partial<Record<ExchangeKind, ExchangeRun[]>>>>;
  /** Medians of the per-repetition figures. */
  medians: Record<WriteSet, PerConcurrency<Partial<Record<ExchangeKind, ExchangeRun>>>>;
  /** Median over repetitions of broker ÷ its floor, and broker ÷ bare minimum, throughput. */
  throughputRatioFloor: Record<WriteSet, PerConcurrency<number>>;
  throughputRatioBare: Record<WriteSet, PerConcurrency<number>>;
  /** 1-minute load average before each repetition. */
  loads: number[];
  /**
   * Each broker start's warm-up (exchange.ts, warmUp): its first exchanges, at concurrency 32. The
   * direct-mode broker serves both direct sets and starts once; the gateway's starts every repetition.
   */
  coldStarts: Partial<Record<BrokerMode, ExchangeRun[]>>;
}

const deployFile = (f: string) => readFileSync(join(repoRoot, 'deploy', f), 'utf8');

async function selfRevokeMechanismOf(bb: BenchBroker): Promise<'pair' | 'shared'> {
  const text = (await bb.broker.internalGet('/metrics')).text;
  return /^k8s_ea_self_revoke_shared 1$/m.test(text) ? 'shared' : 'pair';
}

/** Sets the guard so `direct` uses mechanism `m`, and waits until it does. */
async function useMechanism(direct: BenchBroker, m: 'pair' | 'shared'): Promise<void> {
  setSelfRevokeGuardActions([m === 'shared' ? 'Deny' : 'Warn']);
  for (const deadline = Date.now() + 60_000; (await selfRevokeMechanismOf(direct)) !== m;) {
    if (Date.now() > deadline) throw new Error(`the broker did not switch to the ${m} mechanism in 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Per repetition broker ÷ `kind` throughput, then the median. */
function throughputRatio(runs: Partial<Record<ExchangeKind, ExchangeRun[]>>, kind: ExchangeKind): number {
  const broker = runs.broker ?? [];
  return median(broker.map((b, i) => b.throughput / runs[kind]![i]!.throughput));
}

/** The medians and ratios of the runs (every write set, concurrency and kind ran each repetition). */
export function summarizeWriteSets(
  runs: WriteSetResults['runs'],
  loads: number[],
  coldStarts: WriteSetResults['coldStarts'] = {},
): WriteSetResults {
  const results: WriteSetResults = {
    runs,
    coldStarts,
    medians: { pair: {}, shared: {}, gateway: {} },
    throughputRatioFloor: { pair: {}, shared: {}, gateway: {} },
    throughputRatioBare: { pair: {}, shared: {}, gateway: {} },
    loads,
  };
  for (const w of WRITE_SETS)
    for (const c of WRITE_SET_CONCURRENCIES) {
      const perKind = runs[w][c];
      if (!perKind) continue;
      results.medians[w][c] = Object.fromEntries(
        Object.entries(perKind).map(([kind, r]) => [kind, medianRun(r)]),
      );
      results.throughputRatioFloor[w][c] = throughputRatio(perKind, WRITE_SET_KINDS[w][1]!);
      results.throughputRatioBare[w][c] = throughputRatio(perKind, 'bare');
    }
  return results;
}

/** What has been warmed up (exchange.ts, warmUp): the floor kinds once, each broker once after it started. */
interface Warmed {
  floors: Set<ExchangeKind>;
  brokers: WeakSet<BenchBroker>;
}

/** One write set's batches in one repetition: warm-ups, then every kind at each concurrency. */
async function runWriteSet(
  ctx: BenchContext,
  m: {
    bb: BenchBroker;
    batch: ReturnType<typeof exchangeBatcher>;
    ns: string;
    rep: number;
    w: WriteSet;
    runs: WriteSetResults['runs'];
    warmed: Warmed;
    coldStarts: WriteSetResults['coldStarts'];
  },
  settings: BenchSettings,
  log: (msg: string) => void,
): Promise<void> {
  const { bb, batch, ns, rep, w, runs, warmed } = m;
  const kinds = WRITE_SET_KINDS[w];
  const cold = kinds.filter((k) => (k === 'broker' ? !warmed.brokers.has(bb) : !warmed.floors.has(k)));
  // The shared floor binds the shared Role, which the broker writes back, on its next grant, after
  // a switch back from the pair (a cold broker runs first anyway).
  if (cold.includes('shared') && !cold.includes('broker')) await batch('broker', 4, 4);
  if (cold.length > 0) {
    const coldStart = await warmUp(ctx, bb, batch, cold, { count: settings.warmupCount, namespace: ns });
    warmed.brokers.add(bb);
    for (const k of cold) if (k !== 'broker') warmed.floors.add(k);
    if (coldStart) {
      (m.coldStarts[brokerModeOf(w)] ??= []).push(coldStart);
      log(`  ${w.padEnd(7)} warm-up ${describeRun('broker', coldStart)} (its first exchanges after start)`);
    }
  }
  const clear = () => clearAndSettle(ctx, bb, ns);
  for (const c of WRITE_SET_CONCURRENCIES) {
    const count = batchCount(settings, c);
    // Warm-up at this concurrency: connections on both sides, and (shared) the Role the broker
    // writes back on its first grant.
    for (const kind of kinds) await batch(kind, Math.max(c, 4), c);
    await clear();
    for (const kind of kinds.map((_, i) => kinds[(i + rep) % kinds.length]!)) {
      const run = await measuredBatch(ctx, bb, batch, kind, count, c);
      ((runs[w][c] ??= {})[kind] ??= []).push(run);
      log(`  ${w.padEnd(7)} c=${c} rep ${rep + 1}/${settings.ratioReps} ${describeRun(kind, run)}`);
      await clear();
    }
  }
}

export const runWriteSetBench: Scenario<WriteSetResults> = async (ctx: BenchContext, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const sets = settings.writeSets;
  const direct = sets.some((w) => w !== 'gateway');
  const reader = selfRevokeGuardReaderFor(ctx.rbac.brokerNamespace);
  if (direct) {
    kubectlAdmin(['apply', '-f', '-'], reader);
    kubectlAdmin(['apply', '-f', '-'], deployFile('self-revoke-guard.yaml'));
  }
  const runs: WriteSetResults['runs'] = { pair: {}, shared: {}, gateway: {} };
  const loads: number[] = [];
  const warmed: Warmed = { floors: new Set(), brokers: new WeakSet() };
  const coldStarts: WriteSetResults['coldStarts'] = {};
  let directBroker: BenchBroker | undefined;
  try {
    if (direct) directBroker = await ctx.startBroker([ns]);
    for (let rep = 0; rep < settings.ratioReps; rep += 1) {
      loads.push(loadavg()[0]!);
      for (const w of sets.map((_, i) => sets[(i + rep) % sets.length]!)) {
        const measure = (bb: BenchBroker, target = ctx.target(ns)) =>
          runWriteSet(
            ctx,
            { bb, batch: exchangeBatcher(ctx, bb, ns, target), ns, rep, w, runs, warmed, coldStarts },
            settings,
            log,
          );
        if (w !== 'gateway') {
          await useMechanism(directBroker!, w);
          await measure(directBroker!);
          continue;
        }
        // Its own broker, only for its own batches: a gateway watches every grant of its namespaces,
        // so it would spend CPU beside the other write sets' batches.
        const gateway = await ctx.startBroker([ns], { gateway: true });
        try {
          await measure(gateway, {
            ...ctx.target(ns),
            audience: gatewayTokenAudience({ url: gateway.gatewayUrl! }),
          });
        } finally {
          await gateway.stop();
        }
      }
    }
    const results = summarizeWriteSets(runs, loads, coldStarts);
    for (const w of WRITE_SETS)
      for (const c of WRITE_SET_CONCURRENCIES)
        for (const [kind, run] of Object.entries(results.medians[w][c] ?? {}))
          log(`  median ${w.padEnd(7)} c=${c} ${describeRun(kind, run)}`);
    log(`  load average before each repetition: ${loads.map((l) => l.toFixed(2)).join(', ')}`);
    return results;
  } finally {
    await directBroker?.stop();
    if (direct) {
      tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], deployFile('self-revoke-guard.yaml'));
      tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], reader);
    }
    await ctx.clearGrants(ns);
  }
};
