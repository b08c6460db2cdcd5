// 1b. Direct mode's two self-revoke mechanisms in one run (src/broker/grants/shared-self-revoke.ts):
// the per-grant pair (a Role and its RoleBinding: two RBAC escalation checks) and one RoleBinding to
// the namespace's shared self-revoke Role under its admission guard (deploy/self-revoke-guard.yaml).
// The guard and the broker's permission to read it are installed for the scenario; the same broker
// switches between the two as the guard's binding is set to Deny (shared) or Warn (pair), and each
// repetition runs both, in a rotating order: the broker and its floor (the same writes from the
// minimal client: `shared` or `parallel`) at concurrency 1 and 32, and the bare minimum beside them.
// Per batch: p50, throughput, API server and broker CPU per grant (bench/scenarios/exchange.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { kubectlAdmin, tryKubectlAdmin } from '../../test/support/cluster.js';
import { selfRevokeGuardReaderFor, setSelfRevokeGuardActions } from '../../test/support/deploy-rbac.js';
import { repoRoot } from '../../test/support/repo-root.js';
import type { BenchContext, Scenario } from '../lib/context.js';
import {
  describeRun,
  exchangeBatcher,
  measuredBatch,
  medianRun,
  type ExchangeKind,
  type ExchangeRun,
} from './exchange.js';

export type Mechanism = 'pair' | 'shared';
const MECHANISMS: Mechanism[] = ['pair', 'shared'];
const CONCURRENCIES = [1, 32];
/** What runs per mechanism and concurrency: the broker, its floor, and the bare minimum. */
const KINDS: Record<Mechanism, ExchangeKind[]> = {
  pair: ['broker', 'parallel', 'bare'],
  shared: ['broker', 'shared', 'bare'],
};

export interface SelfRevokeResults {
  /** runs[mechanism][concurrency][kind]: one per repetition. */
  runs: Record<Mechanism, Record<number, Partial<Record<ExchangeKind, ExchangeRun[]>>>>;
  /** Medians of the per-repetition figures. */
  medians: Record<Mechanism, Record<number, Partial<Record<ExchangeKind, ExchangeRun>>>>;
  /** 1-minute load average before each repetition. */
  loads: number[];
}

const deployFile = (f: string) => readFileSync(join(repoRoot, 'deploy', f), 'utf8');

async function mechanismOf(bb: { broker: { internalGet(p: string): Promise<{ text: string }> } }) {
  const text = (await bb.broker.internalGet('/metrics')).text;
  return /^k8s_ea_self_revoke_shared 1$/m.test(text) ? 'shared' : 'pair';
}

export const runSelfRevokeBench: Scenario<SelfRevokeResults> = async (ctx: BenchContext, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const reader = selfRevokeGuardReaderFor(ctx.rbac.brokerNamespace);
  kubectlAdmin(['apply', '-f', '-'], reader);
  kubectlAdmin(['apply', '-f', '-'], deployFile('self-revoke-guard.yaml'));
  const bb = await ctx.startBroker([ns]);
  const use = async (m: Mechanism) => {
    setSelfRevokeGuardActions([m === 'shared' ? 'Deny' : 'Warn']);
    for (const deadline = Date.now() + 60_000; (await mechanismOf(bb)) !== m;) {
      if (Date.now() > deadline) throw new Error(`the broker did not switch to the ${m} mechanism in 60 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const results: SelfRevokeResults = {
    runs: { pair: {}, shared: {} },
    medians: { pair: {}, shared: {} },
    loads: [],
  };
  try {
    const batch = exchangeBatcher(ctx, bb, ns);
    for (let rep = 0; rep < settings.reps; rep += 1) {
      results.loads.push(loadavg()[0]!);
      for (const m of rep % 2 === 0 ? MECHANISMS : [...MECHANISMS].reverse()) {
        await use(m);
        // Warm-up: connections, JIT, and (shared) the Role the broker writes back on its first grant.
        for (const kind of KINDS[m]) await batch(kind, 4, 1);
        await ctx.clearGrants(ns);
        for (const c of CONCURRENCIES) {
          const count = c === 1 ? settings.c1Count : Math.max(settings.concurrentCount, 4 * c);
          const kinds = KINDS[m];
          for (const kind of kinds.map((_, i) => kinds[(i + rep) % kinds.length]!)) {
            const run = await measuredBatch(ctx, bb, batch, kind, count, c);
            ((results.runs[m][c] ??= {})[kind] ??= []).push(run);
            log(`  ${m.padEnd(6)} c=${c} rep ${rep + 1}/${settings.reps} ${describeRun(kind, run)}`);
            await ctx.clearGrants(ns);
          }
        }
      }
    }
    for (const m of MECHANISMS)
      for (const [c, perKind] of Object.entries(results.runs[m]))
        results.medians[m][Number(c)] = Object.fromEntries(
          Object.entries(perKind).map(([kind, runs]) => [kind, medianRun(runs)]),
        );
    for (const m of MECHANISMS)
      for (const c of CONCURRENCIES)
        for (const [kind, run] of Object.entries(results.medians[m][c] ?? {}))
          log(`  median ${m.padEnd(6)} c=${c} ${describeRun(kind, run)}`);
    log(`  load average before each repetition: ${results.loads.map((l) => l.toFixed(2)).join(', ')}`);
    return results;
  } finally {
    await bb.stop();
    tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], deployFile('self-revoke-guard.yaml'));
    tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], reader);
    await ctx.clearGrants(ns);
  }
};
