// The write-set scenario's arithmetic and report (pure): per-repetition ratios to the floor and the
// bare minimum, the keys gateway mode's goals are judged on, and the table.
import { expect, test } from '@jest/globals';
import { batchCount, loadSettings } from '../../bench/lib/settings.js';
import { buildReport, renderMarkdown } from '../../bench/lib/report.js';
import type { ExchangeRun } from '../../bench/scenarios/exchange.js';
import { summarizeWriteSets, type WriteSetResults } from '../../bench/scenarios/write-sets.js';
import { TEST_MACHINE } from './support/test-machine.js';

const run = (throughput: number, apiServerCpuMs = 10): ExchangeRun => ({
  n: 10,
  p50: 1000 / throughput,
  p95: 2000 / throughput,
  p99: 3000 / throughput,
  max: 3000 / throughput,
  throughput,
  apiServerCpuMs,
  brokerCpuMs: 4,
});

/** Two repetitions per write set: the broker's throughput, its floor's and the bare minimum's. */
function runs(gateway: [number, number, number][]): WriteSetResults['runs'] {
  const at32 = (floor: 'parallel' | 'shared' | 'gateway', reps: [number, number, number][]) => ({
    broker: reps.map(([b]) => run(b, 12)),
    [floor]: reps.map(([, f]) => run(f, 9)),
    bare: reps.map(([, , bare]) => run(bare, 4)),
  });
  return {
    pair: {
      32: at32('parallel', [
        [100, 120, 400],
        [110, 130, 400],
      ]),
    },
    shared: {
      32: at32('shared', [
        [150, 160, 400],
        [150, 180, 400],
      ]),
    },
    gateway: { 32: at32('gateway', gateway) },
  };
}

test('ratios are taken per repetition, then their median; a concurrency that did not run stays empty', () => {
  // Per repetition 0.5, 1 and 1.5: the median is 1, where the ratio of the medians would be 150 / 200.
  const r = summarizeWriteSets(
    runs([
      [100, 200, 400],
      [200, 200, 400],
      [150, 100, 300],
    ]),
    [0.2],
  );
  expect(r.throughputRatioFloor.gateway[32]).toBe(1);
  expect(r.medians.gateway[32]?.gateway?.throughput).toBe(200);
  expect(r.throughputRatioBare.gateway[32]).toBe(0.5);
  expect(r.throughputRatioFloor.pair[32]).toBeCloseTo(0.8397, 3);
  expect(r.medians.pair[1]).toBeUndefined();
});

test("gateway mode's exchange is judged against its floor (≥ 0.8) and the bare minimum (≥ 0.6)", () => {
  const settings = loadSettings({ BENCH_QUICK: '1' });
  const judged = (gateway: [number, number, number][]) => {
    const report = buildReport(
      settings,
      TEST_MACHINE,
      { writeSets: summarizeWriteSets(runs(gateway), [0.3, 0.4]) },
      {},
      1000,
    );
    const target = (key: string) => report.targets.find((t) => t.key === key);
    return {
      report,
      floor: target('exchange_gateway_throughput_ratio_c32'),
      bare: target('exchange_gateway_throughput_ratio_bare_c32'),
    };
  };
  const good = judged([
    [250, 300, 400],
    [270, 300, 420],
  ]);
  expect(good.floor).toMatchObject({ value: 0.87, met: true });
  expect(good.bare).toMatchObject({ value: 0.63, met: true });
  expect(good.report.metrics).toMatchObject({
    exchange_gateway_throughput_c32: 260,
    floor_gateway_gateway_throughput_c32: 300,
    floor_gateway_bare_apiserver_cpu_ms_c32: 4,
    exchange_gateway_apiserver_cpu_ms_c32: 12,
    exchange_pair_apiserver_cpu_ms_c32: 12,
    exchange_shared_throughput_ratio_c32: 0.89,
  });
  const bad = judged([
    [200, 300, 400],
    [220, 300, 420],
  ]);
  expect(bad.floor?.met).toBe(false);
  expect(bad.bare?.met).toBe(false);

  const md = renderMarkdown(good.report);
  expect(md).toContain('### Write set by mode');
  expect(md).toContain('Load average before each repetition: 0.30, 0.40.');
  expect(md).toMatch(/^\| gateway \| 32 \| broker \| 3\.85 \| 260 \| 12 \| 4 \| 0\.87 \| 0\.63 \|$/m);
  expect(md).toMatch(
    /^\| gateway \| 32 \| floor \(record, ServiceAccount, RoleBinding, token\) \| 3\.33 \| 300 \| 9 \| {2}\| {2}\| {2}\|$/m,
  );
  expect(md).toContain('| `exchange_gateway_throughput_ratio_c32` | 0.87 | ≥ 0.8 | yes |');
});

test("each broker start's warm-up is reported as its cold start: a key per broker mode, a sentence under the table", () => {
  const cold = (brokerCpuMs: number): ExchangeRun => ({ ...run(150), brokerCpuMs });
  const gateway: [number, number, number][] = [[250, 300, 400]];
  const withCold = summarizeWriteSets(runs(gateway), [0.3], { gateway: [cold(4.6), cold(3), cold(5)] });
  const report = buildReport(
    loadSettings({ BENCH_QUICK: '1' }),
    TEST_MACHINE,
    { writeSets: withCold },
    {},
    1000,
  );
  // The median of the starts' figures; a mode without a start (here direct mode) has no key.
  expect(report.metrics.exchange_gateway_cold_broker_cpu_ms_c32).toBe(4.6);
  expect(report.metrics).not.toHaveProperty('exchange_direct_cold_broker_cpu_ms_c32');
  expect(renderMarkdown(report)).toContain(
    "Measured after each broker's warm-up (a fresh broker's first exchanges at concurrency 32, finding 27), whose broker CPU per grant was: gateway mode 4.6 ms (3 starts).",
  );
  const without = buildReport(
    loadSettings({ BENCH_QUICK: '1' }),
    TEST_MACHINE,
    { writeSets: summarizeWriteSets(runs(gateway), [0.3]) },
    {},
    1000,
  );
  expect(renderMarkdown(without)).not.toContain('warm-up');
});

test('BENCH_WRITE_SETS picks the write sets, all three by default; an unknown one is refused', () => {
  expect(loadSettings({}).writeSets).toEqual(['pair', 'shared', 'gateway']);
  expect(loadSettings({})).toMatchObject({ warmupCount: 768, c32Count: 768 });
  expect(loadSettings({ BENCH_WRITE_SETS: 'gateway, pair' }).writeSets).toEqual(['gateway', 'pair']);
  expect(() => loadSettings({ BENCH_WRITE_SETS: 'gateway,direct' })).toThrow(/BENCH_WRITE_SETS/);
  expect(loadSettings({ BENCH_GROWTH_LAYOUTS: 'spread' }).growthLayouts).toEqual(['spread']);
  expect(() => loadSettings({ BENCH_GROWTH_LAYOUTS: 'one' })).toThrow(/BENCH_GROWTH_LAYOUTS/);
});

test('the exchange and write-set scenarios repeat 8 times in a full run; BENCH_REPS alone sets both counts', () => {
  expect(loadSettings({})).toMatchObject({ reps: 3, ratioReps: 8 });
  expect(loadSettings({ BENCH_QUICK: '1' })).toMatchObject({ reps: 1, ratioReps: 1 });
  expect(loadSettings({ BENCH_REPS: '4' })).toMatchObject({ reps: 4, ratioReps: 4 });
  expect(loadSettings({ BENCH_REPS: '2', BENCH_RATIO_REPS: '6' })).toMatchObject({ reps: 2, ratioReps: 6 });
  expect(() => loadSettings({ BENCH_RATIO_REPS: '0' })).toThrow(/BENCH_RATIO_REPS/);
});

test('a batch at concurrency 32 is BENCH_C32_N grants, at 1 BENCH_C1_N, elsewhere at least 4 per worker', () => {
  const s = loadSettings({ BENCH_C32_N: '500', BENCH_C1_N: '20', BENCH_CONCURRENT_N: '100' });
  expect([1, 8, 32, 64].map((c) => batchCount(s, c))).toEqual([20, 100, 500, 256]);
  expect(batchCount(loadSettings({}), 32)).toBe(768);
});

test('BENCH_ONLY names scenarios; a name that is none (an old one, a typo) is refused, not silently skipped', () => {
  expect([...(loadSettings({ BENCH_ONLY: 'writesets, growth' }).only ?? [])]).toEqual([
    'writesets',
    'growth',
  ]);
  expect(loadSettings({}).only).toBeUndefined();
  expect(() => loadSettings({ BENCH_ONLY: 'selfrevoke' })).toThrow(/BENCH_ONLY takes exchange, writesets/);
});
