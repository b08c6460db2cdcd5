// Repetition counts and sizes. BENCH_QUICK=1 gives a smoke run of about a minute; every count can
// also be set on its own (BENCH_REPS, BENCH_C1_N, ...), e.g. to dig into one figure.

export interface BenchSettings {
  quick: boolean;
  /** Repeated runs per measurement; headline figures are medians over these. */
  reps: number;
  /**
   * Repeated runs of the exchange and write-set scenarios (BENCH_RATIO_REPS; BENCH_REPS when only
   * that is set): their concurrency-32 throughput ratios moved by about a fifth between quiet runs
   * of 3 (docs/benchmarks.md, findings 26 and 28), so their medians take more.
   */
  ratioReps: number;
  concurrencies: number[];
  /** Exchanges per run at concurrency 1. */
  c1Count: number;
  /** Exchanges per run at any other concurrency c > 1: max(this, 4 × c). */
  concurrentCount: number;
  /**
   * Grants each kind makes at concurrency 32 before it is measured, a broker after every start
   * (bench/scenarios/exchange.ts, warmUp): a broker in service has long passed its cold start.
   */
  warmupCount: number;
  /**
   * Grants per run at concurrency 32, whose throughput ratios are goals (exchange and write-set
   * scenarios): the API server's CPU per grant moved by up to 2× from one batch of 192 to the next,
   * which a batch four times longer evens out (docs/benchmarks.md, finding 27).
   */
  c32Count: number;
  verifyCount: number;
  coldJwksReps: number;
  revokeReps: number;
  actionReps: number;
  reapGrants: number;
  scaleGrants: number;
  scaleExchanges: number;
  /** Gateway: GETs per side per run at concurrency 1 (gateway and direct alternate in chunks). */
  gatewayGetCount: number;
  /** Gateway: GETs per side per run at concurrency 32. */
  gatewayConcurrentCount: number;
  /** Gateway: revoke → 401 samples. */
  gatewayRevokeReps: number;
  /** Gateway: live grants in the table for the memory figure. */
  gatewayGrants: number;
  /** Growth: live grant counts measured, ascending (0 first for the baseline). */
  growthSizes: number[];
  /** Growth: which layouts (BENCH_GROWTH_LAYOUTS=single,spread; both by default). */
  growthLayouts: ('single' | 'spread')[];
  /** Growth: exchanges per size at concurrency 1, and at concurrency 32. */
  growthC1Count: number;
  growthC32Count: number;
  /**
   * Growth: seconds of GETs and applies per size, while the broker serves nothing; its reaper runs
   * every this − 1 s (full run: the shipped 15 s), so one of its passes falls in the window.
   */
  growthWindowSeconds: number;
  /**
   * The longest wait before a scenario for the load average to fall below 1 (BENCH_SETTLE_S; 0 in a
   * quick run): bench/lib/foreign-load.ts, settleLoad.
   */
  settleSeconds: number;
  /** Write sets: which ones (BENCH_WRITE_SETS=pair,shared,gateway; all by default). */
  writeSets: WriteSet[];
  /** Which scenarios to run (BENCH_ONLY=exchange,verify,...); all by default. */
  only: Set<ScenarioName> | undefined;
}

/** An integer of at least `min`: 1 (a positive integer) unless said, 0 for a count that may be none. */
const intAtLeast = (name: string, raw: string, min = 1): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name} must be ${min === 1 ? 'a positive integer' : 'a whole number'}, got ${raw}`);
  return n;
};

/** Reads counts from `env` (a test passes its own), each `fallback` when unset. */
const intReader =
  (env: NodeJS.ProcessEnv) =>
  (name: string, fallback: number, min = 1): number => {
    const raw = env[name];
    return raw === undefined || raw === '' ? fallback : intAtLeast(name, raw, min);
  };

/** A comma list of counts (0 allowed), sorted ascending without repeats. */
const sizes = (name: string, raw: string | undefined, fallback: number[]): number[] => {
  if (raw === undefined || raw === '') return fallback;
  const list = raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must list counts ≥ 0, got ${raw}`);
    return n;
  });
  return [...new Set(list)].sort((a, b) => a - b);
};

/** The scenarios, in the order bench/run.ts runs them (BENCH_ONLY names some of them). */
export const SCENARIOS = [
  'exchange',
  'writesets',
  'verify',
  'revocation',
  'reaper',
  'action',
  'credential',
  'scale',
  'gateway',
  'edge',
  'growth',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** The write-set scenario's sets (scenarios/write-sets.ts), in their order. */
export const WRITE_SETS = ['pair', 'shared', 'gateway'] as const;
export type WriteSet = (typeof WRITE_SETS)[number];

/** A comma list of names from `allowed` (all of them when unset), in the order given. */
function namesFrom<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T[] {
  const list = (raw || allowed.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const l of list)
    if (!allowed.includes(l as T)) throw new Error(`${name} takes ${allowed.join(', ')}; got ${raw}`);
  return list as T[];
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): BenchSettings {
  const quick = env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';
  const int = intReader(env);
  const only = env.BENCH_ONLY ? new Set(namesFrom('BENCH_ONLY', env.BENCH_ONLY, SCENARIOS)) : undefined;
  const reps = int('BENCH_REPS', quick ? 1 : 3);
  return {
    quick,
    reps,
    ratioReps: int('BENCH_RATIO_REPS', quick || env.BENCH_REPS ? reps : 8),
    // E.g. BENCH_CONCURRENCIES=1,32 to iterate on the exchange's two headline figures.
    concurrencies: env.BENCH_CONCURRENCIES
      ? env.BENCH_CONCURRENCIES.split(',').map((c) => intAtLeast('BENCH_CONCURRENCIES', c.trim()))
      : quick
        ? [1, 8, 32]
        : [1, 8, 32, 64],
    // 200, not 50: p50s of 50 exchanges could not tell the broker with its record first from the one
    // with the record beside the ServiceAccount, a difference of one round trip (docs/benchmarks.md,
    // finding 30).
    c1Count: int('BENCH_C1_N', quick ? 10 : 200),
    concurrentCount: int('BENCH_CONCURRENT_N', quick ? 48 : 192),
    warmupCount: int('BENCH_WARMUP_N', quick ? 64 : 768),
    c32Count: int('BENCH_C32_N', quick ? 128 : 768),
    verifyCount: int('BENCH_VERIFY_N', quick ? 300 : 1500),
    coldJwksReps: int('BENCH_COLD_REPS', quick ? 1 : 3),
    revokeReps: int('BENCH_REVOKE_REPS', quick ? 1 : 3),
    actionReps: int('BENCH_ACTION_REPS', quick ? 3 : 10),
    reapGrants: int('BENCH_REAP_GRANTS', quick ? 100 : 1000),
    scaleGrants: int('BENCH_SCALE_GRANTS', quick ? 200 : 5000),
    scaleExchanges: int('BENCH_SCALE_N', quick ? 10 : 40),
    gatewayGetCount: int('BENCH_GATEWAY_N', quick ? 100 : 500),
    gatewayConcurrentCount: int('BENCH_GATEWAY_CONCURRENT_N', quick ? 256 : 1280),
    gatewayRevokeReps: int('BENCH_GATEWAY_REVOKE_REPS', quick ? 3 : 9),
    gatewayGrants: int('BENCH_GATEWAY_GRANTS', quick ? 200 : 5000),
    growthSizes: sizes(
      'BENCH_GROWTH_SIZES',
      env.BENCH_GROWTH_SIZES,
      quick ? [0, 100, 400] : [0, 1000, 5000, 10000],
    ),
    growthLayouts: namesFrom('BENCH_GROWTH_LAYOUTS', env.BENCH_GROWTH_LAYOUTS, ['single', 'spread']),
    growthC1Count: int('BENCH_GROWTH_C1_N', quick ? 10 : 30),
    growthC32Count: int('BENCH_GROWTH_C32_N', quick ? 64 : 128),
    growthWindowSeconds: int('BENCH_GROWTH_WINDOW_S', quick ? 6 : 16),
    writeSets: namesFrom('BENCH_WRITE_SETS', env.BENCH_WRITE_SETS, WRITE_SETS),
    settleSeconds: int('BENCH_SETTLE_S', quick ? 0 : 90, 0), // 0: no waiting
    only,
  };
}

/** Exchanges (or floor grants) per measured batch at concurrency `c`. */
export const batchCount = (s: BenchSettings, c: number): number =>
  c === 1 ? s.c1Count : c === 32 ? s.c32Count : Math.max(s.concurrentCount, 4 * c);

export const shouldRun = (s: BenchSettings, scenario: ScenarioName): boolean =>
  !s.only || s.only.has(scenario);
