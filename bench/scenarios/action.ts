// 4. The action's cost on a job, on Node 24 (the runtime action.yml declares): wall time of the real
// main step (dist/main/index.js spawned the way the runner spawns it, with the local OIDC token
// endpoint and the real broker over HTTPS) from process start to exit (the kubeconfig is written just
// before), minus a bare `node -e 0` spawned by the same code with the same environment, paired sample
// by sample. Its load alone: the same bundle spawned without inputs, so that it stops at its first
// input check. Also the size of every dist/ entry.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureNode24 } from '../../test/support/node-runtimes.js';
import { repoRoot } from '../../test/support/runner.js';
import type { Scenario } from '../lib/context.js';
import { BenchBrokerClient } from '../lib/broker-client.js';
import { median, nowMs } from '../lib/stats.js';

export interface ActionResults {
  /** The runtime every step and bare node ran on. */
  node: string;
  samples: { mainMs: number; bareNodeMs: number; loadMs: number; postMs: number; exchangeMs: number }[];
  mainWallMs: number;
  bareNodeMs: number;
  /** Median of the paired differences main - bare node. */
  mainOverheadMs: number;
  /** Median of the paired differences (main stopped at its first input check) - bare node. */
  mainLoadMs: number;
  /**
   * One exchange over a new TLS connection (what main does), timed from this process right
   * before each main step: the broker + API server share of the main step.
   */
  exchangeMs: number;
  /** Median of the paired differences main - bare node - exchange: the action's own cost. */
  actionOwnMs: number;
  postWallMs: number;
  /** Size of every .js file under dist/, by path relative to dist/. */
  bundleBytes: Record<string, number>;
}

export function distEntrySizes(): Record<string, number> {
  const out: Record<string, number> = {};
  const dist = join(repoRoot, 'dist');
  for (const entry of readdirSync(dist, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
    const path = join(entry.parentPath, entry.name);
    out[path.slice(dist.length + 1)] = statSync(path).size;
  }
  return out;
}

export const runActionBench: Scenario<ActionResults> = async (ctx, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const bb = await ctx.startBroker([ns]);
  const samples: ActionResults['samples'] = [];
  const node = await ensureNode24();
  const mainBundle = join(repoRoot, 'dist', 'main', 'index.js');
  try {
    // One unmeasured job first: page cache, broker JIT and JWKS.
    await ctx.forEachJob(
      -1,
      settings.actionReps,
      async (job, i) => {
        let t0 = nowMs();
        const bare = await job.exec(node, ['-e', '0']);
        const bareNodeMs = nowMs() - t0;
        if (bare.code !== 0) throw new Error('node -e 0 failed');
        t0 = nowMs();
        const load = await job.exec(node, [mainBundle]);
        const loadMs = nowMs() - t0;
        if (load.code !== 1 || !/^::error::Input "[a-z-]+" is required/m.test(load.stdout))
          throw new Error(
            `main without inputs did not stop at its first input check:\n${load.stdout}${load.stderr}`,
          );
        const [jwt] = await ctx.presign(1);
        const fresh = new BenchBrokerClient(bb.broker.url, bb.ca, { keepAlive: false });
        t0 = nowMs();
        await fresh.exchange(jwt!, ctx.exchangeBody(ns));
        const exchangeMs = nowMs() - t0;
        fresh.close();
        t0 = nowMs();
        const main = await job.main(ctx.actionInputs(bb, ns));
        const mainMs = nowMs() - t0;
        if (main.exitCode !== 0 || !main.outputs.kubeconfig)
          throw new Error(`main step failed: ${main.errors.join('; ')}`);
        t0 = nowMs();
        const post = await job.post();
        const postMs = nowMs() - t0;
        if (post.exitCode !== 0) throw new Error('post step failed');
        if (i >= 0) {
          samples.push({ mainMs, bareNodeMs, loadMs, postMs, exchangeMs });
          log(
            `  action ${i + 1}/${settings.actionReps}: main ${mainMs.toFixed(0)} ms, node -e 0 ${bareNodeMs.toFixed(0)} ms, main's load ${loadMs.toFixed(0)} ms, exchange alone ${exchangeMs.toFixed(0)} ms, post ${postMs.toFixed(0)} ms`,
          );
        }
      },
      { node },
    );
  } finally {
    await bb.stop();
    await ctx.clearGrants(ns);
  }
  return {
    node: execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim(),
    samples,
    mainWallMs: median(samples.map((s) => s.mainMs)),
    bareNodeMs: median(samples.map((s) => s.bareNodeMs)),
    mainOverheadMs: median(samples.map((s) => s.mainMs - s.bareNodeMs)),
    mainLoadMs: median(samples.map((s) => s.loadMs - s.bareNodeMs)),
    exchangeMs: median(samples.map((s) => s.exchangeMs)),
    actionOwnMs: median(samples.map((s) => s.mainMs - s.bareNodeMs - s.exchangeMs)),
    postWallMs: median(samples.map((s) => s.postMs)),
    bundleBytes: distEntrySizes(),
  };
};
