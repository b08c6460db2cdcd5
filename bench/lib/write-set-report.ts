// The write-set scenario's part of the report (scenarios/write-sets.ts): its flat keys in
// latest.json and its table in docs/benchmarks.md (report.ts calls both).
import {
  WRITE_SETS,
  WRITE_SET_CONCURRENCIES,
  WRITE_SET_KINDS,
  BROKER_MODES,
  type BrokerMode,
  type WriteSet,
  type WriteSetResults,
} from '../scenarios/write-sets.js';
import type { ExchangeKind } from '../scenarios/exchange.js';
import { median, round } from './stats.js';

const WRITE_SET_LABEL: Record<WriteSet, string> = {
  pair: 'direct, self-revoke pair',
  shared: 'direct, shared self-revoke Role',
  gateway: 'gateway',
};

const KIND_LABEL: Partial<Record<ExchangeKind, string>> = {
  broker: 'broker',
  parallel: 'floor (record, ServiceAccount, RoleBinding, token, pair)',
  shared: 'floor (record, ServiceAccount, RoleBinding, token, binding to the shared Role)',
  gateway: 'floor (record, ServiceAccount, RoleBinding, token)',
  bare: 'bare minimum (ServiceAccount, RoleBinding, token)',
};

/** Per write set and concurrency: the broker's ratios to its floor and to the bare minimum, and every kind's medians. */
export function writeSetMetrics(r: WriteSetResults, set: (k: string, v: number | undefined) => void): void {
  for (const w of WRITE_SETS)
    for (const c of WRITE_SET_CONCURRENCIES) {
      set(`exchange_${w}_throughput_ratio_c${c}`, r.throughputRatioFloor[w][c]);
      set(`exchange_${w}_throughput_ratio_bare_c${c}`, r.throughputRatioBare[w][c]);
      for (const [kind, s] of Object.entries(r.medians[w][c] ?? {})) {
        const prefix = kind === 'broker' ? `exchange_${w}` : `floor_${w}_${kind}`;
        set(`${prefix}_p50_ms_c${c}`, s.p50);
        set(`${prefix}_throughput_c${c}`, s.throughput);
        set(`${prefix}_apiserver_cpu_ms_c${c}`, s.apiServerCpuMs);
        if (kind === 'broker') set(`${prefix}_broker_cpu_ms_c${c}`, s.brokerCpuMs);
      }
    }
  for (const mode of BROKER_MODES) set(`exchange_${mode}_cold_broker_cpu_ms_c32`, coldStartCpuMs(r, mode));
}

/** The median over a broker mode's starts of its warm-up's CPU per grant; undefined if none started. */
function coldStartCpuMs(r: WriteSetResults, mode: BrokerMode): number | undefined {
  const runs = r.coldStarts?.[mode];
  return runs?.length ? median(runs.map((x) => x.brokerCpuMs)) : undefined;
}

const f = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? round(v).toLocaleString('en-US') : '–';

/** One row per write set, concurrency and kind, the broker's with its two throughput ratios. */
export function writeSetMarkdown(r: WriteSetResults): string[] {
  const lines = [
    '',
    '### Write set by mode',
    '',
    `The exchange in each mode, beside the same writes from a minimal client (its floor) and the bare minimum; latency in ms, throughput in grants/s, CPU time per grant in ms; ratios = broker ÷ floor and broker ÷ bare minimum throughput, median of per-repetition ratios. Load average before each repetition: ${r.loads.map((l) => l.toFixed(2)).join(', ')}.`,
    '',
    '| mode | concurrency | kind | p50 | throughput | API server CPU | broker CPU | ÷ floor | ÷ bare |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const w of WRITE_SETS)
    for (const c of WRITE_SET_CONCURRENCIES)
      for (const kind of WRITE_SET_KINDS[w]) {
        const s = r.medians[w][c]?.[kind];
        if (!s) continue;
        const broker = kind === 'broker';
        lines.push(
          `| ${WRITE_SET_LABEL[w]} | ${c} | ${KIND_LABEL[kind]} | ${f(s.p50)} | ${f(s.throughput)} | ${f(s.apiServerCpuMs)} | ${broker ? f(s.brokerCpuMs) : ''} | ${broker ? f(r.throughputRatioFloor[w][c]) : ''} | ${broker ? f(r.throughputRatioBare[w][c]) : ''} |`,
        );
      }
  const cold = BROKER_MODES.flatMap((mode) => {
    const starts = r.coldStarts?.[mode]?.length ?? 0;
    if (starts === 0) return [];
    return [`${mode} mode ${f(coldStartCpuMs(r, mode))} ms (${starts} start${starts === 1 ? '' : 's'})`];
  });
  if (cold.length > 0)
    lines.push(
      '',
      `Measured after each broker's warm-up (a fresh broker's first exchanges at concurrency 32, finding 27), whose broker CPU per grant was: ${cold.join('; ')}.`,
    );
  return lines;
}
