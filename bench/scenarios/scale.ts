// 5. The broker with many active grants: memory (VmRSS of the broker process, sampled throughout)
// and exchange latency at concurrency 1, first with no grants in its namespace (the floor for this
// figure), then with N complete, unexpired grants (the broker's exact objects, created directly).
// Both brokers run the reaper at the shipped default interval, whose first pass (listing every
// grant and JWT-use record) happens at start, before the exchanges.
import type { BenchContext, Scenario } from '../lib/context.js';
import { processMemoryMb } from '../lib/context.js';
import type { BenchSettings } from '../lib/settings.js';
import { closedLoop, percentile } from '../lib/stats.js';

export interface ScalePhase {
  activeGrants: number;
  exchangeP50Ms: number;
  exchangeP95Ms: number;
  /** Highest VmRSS sampled while the broker served the exchanges. */
  rssMb: number;
  /** Peak RSS of the broker process over its life (VmHWM). */
  peakRssMb: number;
}

export interface ScaleResults {
  empty: ScalePhase;
  loaded: ScalePhase;
  creationSeconds: number;
}

const CREATE_CONCURRENCY = 64;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measurePhase(
  ctx: BenchContext,
  settings: BenchSettings,
  activeGrants: number,
): Promise<ScalePhase> {
  const ns = ctx.namespaces.scale;
  const bb = await ctx.startBroker([ns]);
  try {
    const tokens = await ctx.presign(settings.scaleExchanges + 5);
    // Let the reaper's first pass (at start) finish listing everything.
    await sleep(3000);
    let rssMb = processMemoryMb(bb.pid).rss;
    const sampler = setInterval(() => {
      rssMb = Math.max(rssMb, processMemoryMb(bb.pid).rss);
    }, 100);
    try {
      for (const t of tokens.slice(0, 5)) await bb.client.exchange(t, ctx.exchangeBody(ns)); // warm-up
      const { latencies } = await closedLoop(settings.scaleExchanges, 1, (i) =>
        bb.client.exchange(tokens[5 + i]!, ctx.exchangeBody(ns)),
      );
      rssMb = Math.max(rssMb, processMemoryMb(bb.pid).rss);
      return {
        activeGrants,
        exchangeP50Ms: percentile(latencies, 50),
        exchangeP95Ms: percentile(latencies, 95),
        rssMb,
        peakRssMb: processMemoryMb(bb.pid).hwm,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await bb.stop();
  }
}

export const runScaleBench: Scenario<ScaleResults> = async (ctx, settings, log) => {
  const ns = ctx.namespaces.scale;
  const n = settings.scaleGrants;
  try {
    await ctx.clearGrants(ns);
    const empty = await measurePhase(ctx, settings, 0);
    log(
      `  0 grants: exchange p50 ${empty.exchangeP50Ms.toFixed(1)} ms, RSS ${empty.rssMb.toFixed(1)} MiB (peak ${empty.peakRssMb.toFixed(1)})`,
    );
    await ctx.clearGrants(ns);

    const target = ctx.target(ns);
    const t0 = Date.now();
    let done = 0;
    await closedLoop(n, CREATE_CONCURRENCY, async () => {
      const g = await ctx.floorGrant(target, 'parallel');
      await g.settled;
      done += 1;
      if (done % 1000 === 0) log(`  created ${done}/${n} grants`);
    });
    const creationSeconds = (Date.now() - t0) / 1000;
    log(`  created ${n} grants in ${creationSeconds.toFixed(1)} s`);

    const loaded = await measurePhase(ctx, settings, n);
    log(
      `  ${n} grants: exchange p50 ${loaded.exchangeP50Ms.toFixed(1)} ms, RSS ${loaded.rssMb.toFixed(1)} MiB (peak ${loaded.peakRssMb.toFixed(1)})`,
    );
    return { empty, loaded, creationSeconds };
  } finally {
    await ctx.clearGrants(ns);
  }
};
