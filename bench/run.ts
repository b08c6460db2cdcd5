// `npm run bench`: every benchmark against the real local control plane, each figure beside its
// floor measured in the same run. Writes bench/results/latest.json and docs/benchmarks.md and
// prints the table. BENCH_QUICK=1 for a smoke run; bench/lib/settings.ts lists the other knobs.
import { createBenchContext } from './lib/context.js';
import { loadSettings, shouldRun } from './lib/settings.js';
import { runExchangeBench } from './scenarios/exchange.js';
import { runVerifyBench } from './scenarios/verify.js';
import { runRevocationBench } from './scenarios/revocation.js';
import { runReaperBench } from './scenarios/reaper.js';
import { runActionBench } from './scenarios/action.js';
import { runScaleBench } from './scenarios/scale.js';
import { runCredentialBench } from './scenarios/credential.js';
import { runGatewayBench } from './scenarios/gateway.js';
import { runEdgeBench } from './scenarios/edge.js';
import { runGrowthBench } from './scenarios/growth.js';
import { runWriteSetBench } from './scenarios/write-sets.js';
import { buildReport, writeReport, type ScenarioResults } from './lib/report.js';
import { machineInfo } from './lib/machine.js';
import { settleLoad, watchForeignLoad, type ScenarioNoise } from './lib/foreign-load.js';

const started = Date.now();
const log = (msg: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

async function main(): Promise<void> {
  const settings = loadSettings();
  const machine = machineInfo();
  log(`settings: ${JSON.stringify({ ...settings, only: settings.only && [...settings.only] })}`);
  const ctx = await createBenchContext(log);
  const results: ScenarioResults = {};
  const noise: Record<string, ScenarioNoise> = {};
  // Each scenario's figures carry how much other work ran beside it (bench/lib/foreign-load.ts).
  const measured = async <R>(name: string, run: () => Promise<R>): Promise<R> => {
    const settled = await settleLoad(settings.settleSeconds * 1000);
    if (settled.waitedMs >= 1000)
      log(
        `  waited ${(settled.waitedMs / 1000).toFixed(0)} s for the load average to settle: ${settled.from.toFixed(2)} → ${settled.to.toFixed(2)}`,
      );
    const stop = watchForeignLoad([process.pid, ctx.apiServerPid]);
    try {
      return await run();
    } finally {
      noise[name] = stop();
      const n = noise[name];
      log(
        `  ${name}: load ${n.loadAtStart.toFixed(2)} at start, ${n.foreignCores} cores of other work${n.noisy ? ': figures noisy' : ''}`,
      );
    }
  };
  try {
    if (shouldRun(settings, 'exchange')) {
      log('1. exchange latency/throughput vs floor');
      results.exchange = await measured('exchange', () => runExchangeBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'writesets')) {
      log('1b. write sets: direct mode with the self-revoke pair, with the shared Role, and gateway mode');
      results.writeSets = await measured('writesets', () => runWriteSetBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'verify')) {
      log('2. JWT verification vs bare jose; cold-JWKS first exchange');
      results.verify = await measured('verify', () => runVerifyBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'revocation')) {
      log('3a. revocation: post step start -> 403 -> 401');
      results.revocation = await measured('revocation', () => runRevocationBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'reaper')) {
      log(`3b. reaper lag with ${settings.reapGrants} expired grants`);
      results.reaper = await measured('reaper', () => runReaperBench(ctx, settings, log, results.exchange));
    }
    if (shouldRun(settings, 'action')) {
      log('4. action main-step overhead and bundle sizes');
      results.action = await measured('action', () => runActionBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'credential')) {
      log('4b. exec credential plugin overhead and renewal latency');
      results.credential = await measured('credential', () => runCredentialBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'scale')) {
      log(`5. broker with ${settings.scaleGrants} active grants`);
      results.scale = await measured('scale', () => runScaleBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'gateway')) {
      log(`6. gateway vs direct; revoke -> 401 at the gateway; RSS with ${settings.gatewayGrants} grants`);
      results.gateway = await measured('gateway', () => runGatewayBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'edge')) {
      log('7. edge mode beside direct gateway mode: GET and exchange p50, c32 throughput, edge CPU per MB');
      results.edge = await measured('edge', () => runEdgeBench(ctx, settings, log));
    }
    if (shouldRun(settings, 'growth')) {
      log(`8. growth: ${settings.growthSizes.join(' / ')} live grants, in one namespace and over ten`);
      results.growth = await measured('growth', () => runGrowthBench(ctx, settings, log));
    }
  } finally {
    log('cleaning up (namespaces, RBAC, brokers)');
    await ctx.close();
  }
  const report = buildReport(settings, machine, results, noise, Date.now() - started);
  const { table } = await writeReport(report);
  process.stdout.write(`${table}\n`);
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
