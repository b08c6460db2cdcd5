// The growth scenario's arithmetic and report (pure): how live grants are spread over namespaces,
// the sizes setting, and the keys and table the report gets from its cells.
import { expect, test } from '@jest/globals';
import { spreadCounts } from '../../bench/lib/live-grants.js';
import { loadSettings } from '../../bench/lib/settings.js';
import { buildReport, renderMarkdown } from '../../bench/lib/report.js';
import type { GrowthCell, GrowthResults } from '../../bench/scenarios/growth.js';
import { TEST_MACHINE } from './support/test-machine.js';

test('live grants are spread evenly, the first namespaces taking the remainder', () => {
  expect(spreadCounts(10_000, 10)).toEqual(Array(10).fill(1000));
  expect(spreadCounts(1005, 10)).toEqual([101, 101, 101, 101, 101, 100, 100, 100, 100, 100]);
  expect(spreadCounts(7, 1)).toEqual([7]);
  expect(spreadCounts(0, 3)).toEqual([0, 0, 0]);
});

test('BENCH_GROWTH_SIZES lists counts from 0, sorted; small in a quick run', () => {
  expect(loadSettings({}).growthSizes).toEqual([0, 1000, 5000, 10000]);
  expect(Math.max(...loadSettings({ BENCH_QUICK: '1' }).growthSizes)).toBeLessThanOrEqual(1000);
  expect(loadSettings({ BENCH_GROWTH_SIZES: '500, 0,500,200' }).growthSizes).toEqual([0, 200, 500]);
  expect(() => loadSettings({ BENCH_GROWTH_SIZES: '0,-1' })).toThrow(/BENCH_GROWTH_SIZES/);
  expect(() => loadSettings({ BENCH_GROWTH_SIZES: '0,1k' })).toThrow(/BENCH_GROWTH_SIZES/);
});

const lat = (p50: number) => ({ n: 10, p50, p95: p50 * 2, p99: p50 * 3, max: p50 * 3 });
const cell = (
  layout: GrowthCell['layout'],
  liveGrants: number,
  slowdown: number,
  noisy = false,
): GrowthCell => ({
  layout,
  liveGrants,
  inNamespace: layout === 'single' ? liveGrants : liveGrants / 10,
  exchangeC1: { ...lat(20 * slowdown), throughput: 50 / slowdown },
  exchangeC32: { ...lat(300 * slowdown), throughput: 80 / slowdown },
  apiServerCpuMsPerExchange: 25 * slowdown,
  brokerCpuMsPerExchange: 6,
  get: lat(2 * slowdown),
  apply: lat(5 * slowdown),
  brokerIdleCpuMsPerS: 3 * slowdown,
  selfRevokeFailures: noisy ? 4 : 0,
  failedExchanges: noisy ? 2 : 0,
  noise: { loadAtStart: noisy ? 2.5 : 0.3, foreignCpuMs: 0, foreignCores: noisy ? 0.6 : 0, noisy },
});

test('each cell gets its keys, the largest single namespace its ratios, and the table its load', () => {
  const growth: GrowthResults = {
    sizes: [0, 10_000],
    cells: [cell('single', 0, 1), cell('single', 10_000, 3, true), cell('spread', 10_000, 1.5)],
    seedSeconds: { single: 90, spread: 95 },
    removeSeconds: { single: 30, spread: 31 },
    leftovers: 0,
    wallSeconds: 420,
    profiles: [],
  };
  const report = buildReport(loadSettings({}), TEST_MACHINE, { growth }, {}, 1000);
  expect(report.metrics).toMatchObject({
    growth_exchange_p50_ms_c1_single_0: 20,
    growth_exchange_p50_ms_c1_single_10000: 60,
    growth_exchange_throughput_c32_spread_10000: 53.3,
    growth_get_p50_ms_spread_10000: 3,
    growth_apply_p50_ms_single_10000: 15,
    growth_exchange_p50_ratio_10000: 3,
    growth_get_p50_ratio_10000: 3,
    growth_wall_s: 420,
  });
  const md = renderMarkdown(report);
  expect(md).toContain('### Growth: live grants in the namespace');
  expect(md).toContain('removing them single 30 s, spread 31 s; 0 grant objects were left after');
  expect(md).toMatch(
    /^\| single \| 10,000 \| 10,000 \| 60 \/ 120 \|.*\| 2 \| 4 \| 2\.50 \| 0\.6 \(noisy\) \|$/m,
  );
  expect(md).toMatch(/^\| spread \| 10,000 \| 1,000 \| 30 \/ 60 \|.*\| 0 \| 0 \| 0\.30 \| 0 \|$/m);
});
