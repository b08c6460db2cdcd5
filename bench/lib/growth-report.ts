// The growth scenario's part of the report: its flat keys in latest.json and its table in
// docs/benchmarks.md (report.ts calls both).
import type { GrowthCell, GrowthResults } from '../scenarios/growth.js';
import { round } from './stats.js';

const key = (c: GrowthCell, what: string) => `growth_${what}_${c.layout}_${c.liveGrants}`;

/** Per layout and size: exchange p50 (c1) and throughput (c32), GET and apply p50, CPU per exchange. */
export function growthMetrics(g: GrowthResults, set: (k: string, v: number | undefined) => void): void {
  for (const c of g.cells) {
    set(key(c, 'exchange_p50_ms_c1'), c.exchangeC1.p50);
    set(key(c, 'exchange_throughput_c1'), c.exchangeC1.throughput);
    set(key(c, 'exchange_throughput_c32'), c.exchangeC32.throughput);
    set(key(c, 'apiserver_cpu_ms'), c.apiServerCpuMsPerExchange);
    set(key(c, 'broker_cpu_ms'), c.brokerCpuMsPerExchange);
    set(key(c, 'get_p50_ms'), c.get.p50);
    set(key(c, 'apply_p50_ms'), c.apply.p50);
    set(key(c, 'broker_idle_cpu_ms_per_s'), c.brokerIdleCpuMsPerS);
    set(key(c, 'self_revoke_failures'), c.selfRevokeFailures);
    set(key(c, 'failed_exchanges'), c.failedExchanges);
  }
  // The headline: how much slower the largest single namespace is than an empty one.
  const single = g.cells.filter((c) => c.layout === 'single');
  const [first, last] = [single[0], single.at(-1)];
  if (first && last && first !== last) {
    set(`growth_exchange_p50_ratio_${last.liveGrants}`, last.exchangeC1.p50 / first.exchangeC1.p50);
    set(`growth_get_p50_ratio_${last.liveGrants}`, last.get.p50 / first.get.p50);
    set(`growth_apply_p50_ratio_${last.liveGrants}`, last.apply.p50 / first.apply.p50);
  }
  set('growth_wall_s', g.wallSeconds);
}

const f = (v: number): string => (Number.isFinite(v) ? round(v).toLocaleString('en-US') : '–');

/** The growth table: one row per layout and size, each with the load it ran under. */
export function growthMarkdown(g: GrowthResults): string[] {
  const seed = Object.entries(g.seedSeconds)
    .map(([l, s]) => `${l} ${f(s)} s`)
    .join(', ');
  const removed = Object.entries(g.removeSeconds)
    .map(([l, s]) => `${l} ${f(s)} s`)
    .join(', ');
  const lines = [
    '',
    '### Growth: live grants in the namespace',
    '',
    `Exchange latency in ms at concurrency 1 (p50 / p95) and throughput in grants/s at 1 and 32, with the API server's and the broker's CPU per exchange at 32; an unrelated identity's GET and a job's server-side apply in the same namespace (p50 / p95, ms); the broker's CPU per second while it serves nothing (its reaper included); the exchanges the broker answered with an error (their time counts in the latency) and the self-revoke pairs it could not make (it logs each; those grants work, and are revoked through the broker or reaped); the load each row ran under. _single_: every live grant in the measured namespace; _spread_: spread evenly over ten, the measured one among them. Making the live grants took ${seed || '–'}, removing them ${removed || '–'}; ${g.leftovers} grant objects were left after; the scenario took ${f(g.wallSeconds)} s.`,
    '',
    '| layout | live grants | in namespace | exchange p50 / p95 | /s at 1 | /s at 32 | API server CPU | broker CPU | GET p50 / p95 | apply p50 / p95 | broker idle CPU ms/s | exchanges failed | pairs failed | load at start | other work (cores) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of g.cells)
    lines.push(
      `| ${c.layout} | ${f(c.liveGrants)} | ${f(c.inNamespace)} | ${f(c.exchangeC1.p50)} / ${f(c.exchangeC1.p95)} | ${f(c.exchangeC1.throughput)} | ${f(c.exchangeC32.throughput)} | ${f(c.apiServerCpuMsPerExchange)} | ${f(c.brokerCpuMsPerExchange)} | ${f(c.get.p50)} / ${f(c.get.p95)} | ${f(c.apply.p50)} / ${f(c.apply.p95)} | ${f(c.brokerIdleCpuMsPerS)} | ${c.failedExchanges} | ${c.selfRevokeFailures} | ${c.noise.loadAtStart.toFixed(2)} | ${c.noise.foreignCores}${c.noise.noisy ? ' (noisy)' : ''} |`,
    );
  return lines;
}
