// The benchmark's own arithmetic and reporting (pure, fast): nearest-rank percentiles from raw
// samples, the closed loop's concurrency bound, targets judged from the measured keys, and the
// generated block of docs/benchmarks.md replaced without touching the hand-written text.
import { expect, test } from '@jest/globals';
import { closedLoop, median, percentile, summarize } from '../../bench/lib/stats.js';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  buildReport,
  flatMetrics,
  noiseSentence,
  renderMarkdown,
  spliceGenerated,
} from '../../bench/lib/report.js';
import { settleLoad, watchForeignLoad } from '../../bench/lib/foreign-load.js';
import { loadSettings } from '../../bench/lib/settings.js';
import type { ExchangeResults } from '../../bench/scenarios/exchange.js';
import type { GatewayResults } from '../../bench/scenarios/gateway.js';
import { TEST_MACHINE } from './support/test-machine.js';

test('percentiles are nearest-rank over the raw samples, in any order', () => {
  const samples = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  expect(percentile(samples, 50)).toBe(5);
  expect(percentile(samples, 95)).toBe(10);
  expect(percentile(samples, 10)).toBe(1);
  expect(percentile([42], 99)).toBe(42);
  expect(percentile([], 50)).toBeNaN();
  expect(median([3, 1, 2, 10])).toBe(2.5);
  expect(summarize(samples)).toMatchObject({ n: 10, p50: 5, p99: 10, max: 10 });
});

test('the closed loop never has more than `concurrency` tasks in flight and runs each once', async () => {
  let inFlight = 0;
  let peak = 0;
  const seen: number[] = [];
  const { latencies } = await closedLoop(25, 4, async (i) => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 1));
    seen.push(i);
    inFlight -= 1;
  });
  expect(latencies).toHaveLength(25);
  expect(peak).toBe(4);
  expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
});

const run = (p50: number, throughput: number) => ({
  n: 10,
  p50,
  p95: p50,
  p99: p50,
  max: p50,
  throughput,
  apiServerCpuMs: p50 / 4,
  brokerCpuMs: p50 / 10,
});

/** The bare minimum takes `bareShare` of the parallel floor's time; the inline role `inlineP50`. */
function exchangeResults(
  brokerP50: number,
  floorP50: number,
  { bareShare = 0.8, inlineP50 = brokerP50 } = {},
): ExchangeResults {
  const kinds = (b: number, f: number) => ({
    broker: run(b, 100 / b),
    parallel: run(f, 100 / f),
    sequential: run(f + 10, 100 / (f + 10)),
    bare: run(f * bareShare, 100 / (f * bareShare)),
  });
  return {
    runs: {},
    medians: {
      1: { ...kinds(brokerP50, floorP50), inline: run(inlineP50, 100 / inlineP50) },
      32: kinds(brokerP50 * 2, floorP50 * 2),
    },
    p50RatioParallel: { 1: brokerP50 / floorP50 },
    p50RatioSequential: { 1: brokerP50 / (floorP50 + 10) },
    throughputRatioParallel: { 1: floorP50 / brokerP50, 32: floorP50 / brokerP50 },
    floorThroughputRatioBare: { 1: bareShare, 32: bareShare },
    inlineP50RatioC1: inlineP50 / brokerP50,
    exchangesPerRun: { 1: 10, 32: 128 },
  };
}

test('targets are judged from the measured keys: met, missed, or not run', () => {
  const settings = loadSettings({ BENCH_QUICK: '1' });
  const good = buildReport(settings, TEST_MACHINE, { exchange: exchangeResults(110, 100) }, {}, 1000);
  expect(good.metrics.exchange_p50_ratio_c1).toBe(1.1);
  expect(good.targets.find((t) => t.key === 'exchange_p50_ratio_c1')?.met).toBe(true);
  expect(good.targets.find((t) => t.key === 'exchange_throughput_ratio_c32')?.met).toBe(true);
  expect(good.targets.find((t) => t.key === 'verify_ratio')).toMatchObject({ value: null, met: null });

  const bad = buildReport(settings, TEST_MACHINE, { exchange: exchangeResults(150, 100) }, {}, 1000);
  expect(bad.targets.find((t) => t.key === 'exchange_p50_ratio_c1')?.met).toBe(false);
  expect(bad.targets.find((t) => t.key === 'exchange_throughput_ratio_c32')?.met).toBe(false);
  expect(flatMetrics({ exchange: exchangeResults(150, 100) }).floor_parallel_p50_ms_c1).toBe(100);
  const md = renderMarkdown(bad);
  expect(md).toContain('quick smoke run');
  expect(md).toContain('| `exchange_p50_ratio_c1` | 1.5 | ≤ 1.15 | **no** |');
});

test("the exchange broker's warm-up is its cold start: a key, and the caption of the exchange table", () => {
  const settings = loadSettings({ BENCH_QUICK: '1' });
  const cold = { ...exchangeResults(110, 100), coldStart: { ...run(300, 80), n: 768, brokerCpuMs: 4.6 } };
  const report = buildReport(settings, TEST_MACHINE, { exchange: cold }, {}, 1000);
  expect(report.metrics.exchange_cold_broker_cpu_ms_c32).toBe(4.6);
  expect(renderMarkdown(report)).toContain(
    "Measured after the broker's warm-up (its first 768 exchanges at concurrency 32, 4.6 ms of broker CPU per grant; finding 27).",
  );
  const warmOnly = buildReport(settings, TEST_MACHINE, { exchange: exchangeResults(110, 100) }, {}, 1000);
  expect(warmOnly.metrics).not.toHaveProperty('exchange_cold_broker_cpu_ms_c32');
});

test('the bare-minimum floor and the inline role get their keys and are judged against their goals', () => {
  const settings = loadSettings({ BENCH_QUICK: '1' });
  const judged = (r: ExchangeResults) => {
    const report = buildReport(settings, TEST_MACHINE, { exchange: r }, {}, 1000);
    const met = (key: string) => report.targets.find((t) => t.key === key)?.met;
    return {
      report,
      bare: met('floor_throughput_ratio_bare_c32'),
      inline: met('exchange_inline_p50_ratio_c1'),
    };
  };
  const good = judged(exchangeResults(110, 100, { bareShare: 0.7, inlineP50: 121 }));
  expect(good.report.metrics).toMatchObject({
    floor_throughput_ratio_bare_c32: 0.7,
    exchange_inline_p50_ratio_c1: 1.1,
    exchange_inline_p50_ms_c1: 121,
    floor_bare_p50_ms_c1: 70,
    floor_bare_apiserver_cpu_ms_c1: 17.5,
    exchange_inline_broker_cpu_ms_c1: 12.1,
  });
  // A floor runs no broker: no broker CPU figure for it.
  expect(good.report.metrics).not.toHaveProperty('floor_bare_broker_cpu_ms_c1');
  expect(good.report.metrics.floor_bare_throughput_c32).toBeCloseTo(100 / 140, 2);
  expect(good).toMatchObject({ bare: true, inline: true });

  const bad = judged(exchangeResults(110, 100, { bareShare: 0.5, inlineP50: 220 }));
  expect(bad).toMatchObject({ bare: false, inline: false });
  const md = renderMarkdown(bad.report);
  expect(md).toContain('| `floor_throughput_ratio_bare_c32` | 0.5 | ≥ 0.67 | **no** |');
  expect(md).toContain('| `exchange_inline_p50_ratio_c1` | 2 | ≤ 1.3 | **no** |');
  expect(md).toMatch(/\| 1 \| 10 \| broker, inline role \| 220 \|.*\| 2 \|\s+\|$/m);
  expect(md).toMatch(/\| 32 \| 128 \| floor, parallel \| 200 \|.*\|\s+\| 0\.5 \|$/m);
});

function gatewayResults(gatewayP50: number, revoke401Ms: number): GatewayResults {
  const memory = (liveGrants: number, rssMb: number) => ({ liveGrants, rssMb, peakRssMb: rssMb + 10 });
  return {
    runs: [],
    c1P50Ms: { gateway: gatewayP50, direct: 4, noop: 4.2 },
    c32Throughput: { gateway: 300, direct: 400, noop: 360 },
    p50RatioC1: gatewayP50 / 4,
    throughputRatioC32: 0.75,
    noopP50RatioC1: 1.05,
    noopThroughputRatioC32: 0.9,
    brokerCpuMsPerRequest: 0.5,
    noopCpuMsPerRequest: 0.2,
    revokes: [],
    revoke401Ms,
    revokeCallMs: revoke401Ms + 20,
    empty: memory(0, 90),
    loaded: memory(5000, 120),
    loadedWithoutGateway: memory(5000, 110),
    creationSeconds: 60,
    shadow: {
      runs: [],
      c1P50Ms: { plain: 4.4, shadow: 4.5 },
      c32Throughput: { plain: 300, shadow: 297 },
      p50RatioC1: 1.02,
      throughputRatioC32: 0.99,
      recordMicros: { plain: 1.7, shadow: 1.9 },
    },
  };
}

test('gateway figures get their keys, named by the grant count, and are judged against their goals', () => {
  const settings = loadSettings({ BENCH_QUICK: '1' });
  const good = buildReport(settings, TEST_MACHINE, { gateway: gatewayResults(4.4, 30) }, {}, 1000);
  expect(good.metrics).toMatchObject({
    gateway_get_p50_ratio_c1: 1.1,
    gateway_throughput_ratio_c32: 0.75,
    gateway_revoke_401_ms: 30,
    gateway_rss_mb_5000: 120,
    gateway_rss_mb_0: 90,
    gateway_off_rss_mb_5000: 110,
    gateway_noop_proxy_p50_ratio_c1: 1.05,
    gateway_noop_proxy_throughput_ratio_c32: 0.9,
    gateway_noop_proxy_cpu_ms_per_get: 0.2,
    gateway_shadow_p50_ratio_c1: 1.02,
    gateway_shadow_throughput_ratio_c32: 0.99,
    gateway_shadow_record_us: 1.9,
  });
  for (const key of ['gateway_get_p50_ratio_c1', 'gateway_throughput_ratio_c32', 'gateway_revoke_401_ms'])
    expect(good.targets.find((t) => t.key === key)?.met).toBe(true);

  const bad = buildReport(settings, TEST_MACHINE, { gateway: gatewayResults(6, 150) }, {}, 1000);
  expect(bad.targets.find((t) => t.key === 'gateway_get_p50_ratio_c1')?.met).toBe(false);
  expect(bad.targets.find((t) => t.key === 'gateway_revoke_401_ms')?.met).toBe(false);
  const md = renderMarkdown(bad);
  expect(md).toContain('| `gateway_revoke_401_ms` | 150 | ≤ 100 | **no** |');
  // Shadow mode's cost beside the gateway's own figures.
  expect(md).toContain('the same gateway, a rule without: 4.4 ms → ratio 1.02');
  // Without the revocation scenario in the same run, the direct figure is said to be missing.
  expect(md).toContain('direct, post step → 401: not run');
});

test('only the generated block of the doc is replaced', () => {
  const begin = '<!-- bench:begin (generated by `npm run bench`; do not edit by hand) -->';
  const doc = `# Benchmarks\n\nHand-written notes.\n\n${begin}\n\nold table\n\n<!-- bench:end -->\n\nAfter.\n`;
  const out = spliceGenerated(doc, 'new table');
  expect(out).toContain('Hand-written notes.');
  expect(out).toContain('After.');
  expect(out).toContain('new table');
  expect(out).not.toContain('old table');
  // A doc without markers gets a block appended, its text kept.
  const appended = spliceGenerated('# Benchmarks\n\nNotes.\n', 'table');
  expect(appended.startsWith('# Benchmarks\n\nNotes.')).toBe(true);
  expect(appended).toContain(`${begin}\n\ntable\n\n<!-- bench:end -->`);
});

test('BENCH_CONCURRENCIES picks the exchange concurrencies; anything but positive integers is refused', () => {
  expect(loadSettings({ BENCH_CONCURRENCIES: '1, 32' }).concurrencies).toEqual([1, 32]);
  expect(loadSettings({ BENCH_QUICK: '1' }).concurrencies).toEqual([1, 8, 32]);
  expect(() => loadSettings({ BENCH_CONCURRENCIES: '1,0' })).toThrow(/positive integer/);
  expect(() => loadSettings({ BENCH_CONCURRENCIES: '8,x' })).toThrow(/positive integer/);
});

test('the report says which scenarios ran beside other work, and a quiet run says so', () => {
  const quiet = { loadAtStart: 0.2, foreignCpuMs: 500, foreignCores: 0.05, noisy: false };
  expect(noiseSentence({ exchange: quiet, gateway: quiet })).toMatch(/^Quiet run/);
  const sentence = noiseSentence({
    exchange: quiet,
    reaper: { loadAtStart: 3.1, foreignCpuMs: 14_000, foreignCores: 1.4, noisy: true },
  });
  expect(sentence).toMatch(/^\*\*Figures noisy\*\*/);
  expect(sentence).toContain('reaper (load 3.10 at start, 1.4 cores of other work)');
  expect(sentence).not.toContain('exchange');
});

test("the bench's own process trees are not counted as other work; a child outside them is", () => {
  // Two watches over nearly the same window see the same machine; only what they count as their own
  // differs. The one whose own tree holds this process sees its busy child as its own work.
  const cpuOfReapedChildrenMs = () => {
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[13]) + Number(f[14])) * 10;
  };
  const before = cpuOfReapedChildrenMs();
  // The window without own trees encloses the other (started first, ended last): on a busy machine
  // it then sees at least the machine time the inner one sees, so the difference is the child's.
  const withoutOwn = watchForeignLoad([]);
  const withOwn = watchForeignLoad([process.pid]);
  // The child burns 300 ms of CPU however long a busy machine makes that take.
  const burn =
    'const u = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; }; while (u() < 300);';
  expect(spawnSync(process.execPath, ['-e', burn]).status).toBe(0);
  const own = withOwn();
  const all = withoutOwn();
  const childCpuMs = cpuOfReapedChildrenMs() - before;
  // /proc counts the child's user and system time each in whole 10 ms ticks, rounded down: the
  // 300 ms it burnt can read as 280 (it once read 290).
  expect(childCpuMs).toBeGreaterThanOrEqual(280);
  // Ticks are 10 ms: a reading may be off by a tick or two on each side.
  expect(all.foreignCpuMs - own.foreignCpuMs).toBeGreaterThanOrEqual(childCpuMs - 40);
});

test('before a scenario the bench waits for the load average to fall below 1, and no longer than its bound', async () => {
  const loads = [3.1, 2.2, 1.4, 0.9, 0.5];
  const falling = await settleLoad(10_000, { load: () => loads.shift()!, pollMs: 1 });
  expect(falling).toMatchObject({ from: 3.1, to: 0.9 });
  expect(loads).toEqual([0.5]); // it stopped looking once the load was below 1
  const busy = await settleLoad(30, { load: () => 4, pollMs: 5 });
  expect(busy).toMatchObject({ from: 4, to: 4 });
  expect(busy.waitedMs).toBeGreaterThanOrEqual(30);
  expect((await settleLoad(0, { load: () => 4 })).waitedMs).toBeLessThan(50); // BENCH_SETTLE_S=0
});
