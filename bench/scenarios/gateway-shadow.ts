// 6b. Shadow mode's cost, beside the gateway's figures: one broker with its gateway, two grants of
// the same role, one whose policy rule names a shadowRole (every forwarded call is then evaluated
// against that role too, src/broker/usage/usage-recorder.ts) and one whose rule names none. The
// same GET by each, alternated in small chunks (and the order rotated) so both sides see the same
// load on this shared machine: p50 at concurrency 1 and throughput at concurrency 32. The shadow
// role allows the GET, the steady state before a switch (zero would-deny: no log line per call).
// On a loaded machine the end-to-end ratios carry its noise, so the recorder's own cost per call,
// with and without the evaluation, is measured in this process too.
import { UsageRecorder } from '../../src/broker/usage/usage-recorder.js';
import type { BenchContext } from '../lib/context.js';
import { REPOSITORY_IDS, SHADOW_REPOSITORY_ID, SHADOW_RULES } from '../lib/context.js';
import { MinimalKubeClient } from '../lib/kube-client.js';
import type { BenchSettings } from '../lib/settings.js';
import { closedLoop, median, nowMs, percentile } from '../lib/stats.js';

type Side = 'plain' | 'shadow';
const SIDES: readonly Side[] = ['plain', 'shadow'];
const CHUNK = 25;
const ROUNDS_C32 = 4;
const CONFIGMAP = 'bench-gateway-shadow';

export interface ShadowRun {
  c1P50Ms: Record<Side, number>;
  c32Throughput: Record<Side, number>;
}

export interface ShadowCost {
  runs: ShadowRun[];
  c1P50Ms: Record<Side, number>;
  c32Throughput: Record<Side, number>;
  /** With a shadowRole ÷ without: 1 is free. */
  p50RatioC1: number;
  throughputRatioC32: number;
  /** The gateway's per-call recording (usage/usage-recorder.ts) in this process, µs per call. */
  recordMicros: Record<Side, number>;
}

/** µs per recorded call, median of 10 batches, the two recorders alternating. */
function recordMicros(): Record<Side, number> {
  const grant = { grantId: 'g', namespace: 'ns', ruleName: 'r', role: 'deployer' };
  const call = { verb: 'get', apiGroup: '', resource: 'configmaps', namespace: 'ns', name: 'x', status: 200 };
  const recorders: Record<Side, UsageRecorder> = {
    plain: new UsageRecorder(),
    shadow: new UsageRecorder({ shadowRole: () => ({ role: 'shadow', rules: SHADOW_RULES }) }),
  };
  const batch = (side: Side, n: number) => {
    const t0 = nowMs();
    for (let i = 0; i < n; i += 1) recorders[side].record(grant, call);
    return ((nowMs() - t0) / n) * 1000;
  };
  const out: Record<Side, number[]> = { plain: [], shadow: [] };
  for (let k = 0; k < 13; k += 1)
    for (const side of order(k)) {
      const us = batch(side, 50_000);
      if (k >= 3) out[side].push(us); // the first batches warm the JIT
    }
  return { plain: median(out.plain), shadow: median(out.shadow) };
}

const order = (k: number): Side[] => (k % 2 ? ['shadow', 'plain'] : ['plain', 'shadow']);

async function mustGet(client: MinimalKubeClient, path: string): Promise<void> {
  const res = await client.raw('GET', path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}`);
}

/** The would-deny count the broker's metrics show, over every rule. */
async function wouldDenyTotal(internalUrl: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', internalUrl))).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('k8s_ea_gateway_shadow_would_deny_total{'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/**
 * Proof that only the shadow side is evaluated: a DELETE of a missing ConfigMap (404, so allowed
 * by RBAC) by each side; the shadow role does not allow it, so the count grows by one, not two.
 */
async function proveShadowed(clients: Record<Side, MinimalKubeClient>, ns: string, internalUrl: string) {
  const before = await wouldDenyTotal(internalUrl);
  for (const side of SIDES) {
    const res = await clients[side].raw('DELETE', `/api/v1/namespaces/${ns}/configmaps/bench-no-such-object`);
    if (res.status !== 404) throw new Error(`the probe DELETE answered ${res.status}`);
  }
  const added = (await wouldDenyTotal(internalUrl)) - before;
  if (added !== 1) throw new Error(`the shadow probe added ${added} would-deny calls, not 1`);
}

async function measureRun(
  clients: Record<Side, MinimalKubeClient>,
  path: string,
  settings: BenchSettings,
  rep: number,
): Promise<ShadowRun> {
  const c1: Record<Side, number[]> = { plain: [], shadow: [] };
  for (let done = 0, k = rep; done < settings.gatewayGetCount; done += CHUNK, k += 1) {
    const n = Math.min(CHUNK, settings.gatewayGetCount - done);
    for (const side of order(k))
      c1[side].push(...(await closedLoop(n, 1, () => mustGet(clients[side], path))).latencies);
  }
  const perRound = Math.ceil(settings.gatewayConcurrentCount / ROUNDS_C32);
  const c32: Record<Side, { n: number; wallMs: number }> = {
    plain: { n: 0, wallMs: 0 },
    shadow: { n: 0, wallMs: 0 },
  };
  for (let k = rep; k < rep + ROUNDS_C32; k += 1)
    for (const side of order(k)) {
      const { wallMs } = await closedLoop(perRound, 32, () => mustGet(clients[side], path));
      c32[side].n += perRound;
      c32[side].wallMs += wallMs;
    }
  const both = (f: (side: Side) => number) => ({ plain: f('plain'), shadow: f('shadow') });
  return {
    c1P50Ms: both((side) => percentile(c1[side], 50)),
    c32Throughput: both((side) => (c32[side].n / c32[side].wallMs) * 1000),
  };
}

export async function measureShadowCost(
  ctx: BenchContext,
  settings: BenchSettings,
  log: (msg: string) => void,
  ns: string,
): Promise<ShadowCost> {
  const bb = await ctx.startBroker([ns], { gateway: true, shadowRole: true });
  const clients: Partial<Record<Side, MinimalKubeClient>> = {};
  const path = `/api/v1/namespaces/${ns}/configmaps/${CONFIGMAP}`;
  try {
    await ctx.adminKube.json('POST', `/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CONFIGMAP },
      data: { k: 'v' },
    });
    for (const [side, repositoryId] of [
      ['plain', REPOSITORY_IDS[0]!],
      ['shadow', SHADOW_REPOSITORY_ID],
    ] as const) {
      const jwt = await ctx.issuer.sign({ repository_id: repositoryId });
      const grant = await bb.client.exchange(jwt, ctx.exchangeBody(ns));
      clients[side] = new MinimalKubeClient({ server: bb.gatewayUrl!, ca: bb.ca, token: grant.token });
    }
    const sides = clients as Record<Side, MinimalKubeClient>;
    await proveShadowed(sides, ns, bb.broker.internalUrl);
    // Warm-up: connections, the gateway's token review cache, JIT on both paths.
    for (let i = 0; i < 20; i += 1) for (const side of SIDES) await mustGet(sides[side], path);
    const runs: ShadowRun[] = [];
    for (let rep = 0; rep < settings.reps; rep += 1) {
      const run = await measureRun(sides, path, settings, rep);
      runs.push(run);
      log(
        `  shadow run ${rep + 1}/${settings.reps}: GET p50 c1 ${run.c1P50Ms.shadow.toFixed(2)} with a shadowRole vs ${run.c1P50Ms.plain.toFixed(2)} ms without, c32 ${run.c32Throughput.shadow.toFixed(0)} vs ${run.c32Throughput.plain.toFixed(0)} /s`,
      );
    }
    const side = (f: (r: ShadowRun) => Record<Side, number>) => ({
      plain: median(runs.map((r) => f(r).plain)),
      shadow: median(runs.map((r) => f(r).shadow)),
    });
    return {
      runs,
      c1P50Ms: side((r) => r.c1P50Ms),
      c32Throughput: side((r) => r.c32Throughput),
      p50RatioC1: median(runs.map((r) => r.c1P50Ms.shadow / r.c1P50Ms.plain)),
      throughputRatioC32: median(runs.map((r) => r.c32Throughput.shadow / r.c32Throughput.plain)),
      recordMicros: recordMicros(),
    };
  } finally {
    for (const c of Object.values(clients)) c.close();
    await bb.stop();
    await ctx.adminKube
      .json('DELETE', `/api/v1/namespaces/${ns}/configmaps/${CONFIGMAP}`)
      .catch(() => undefined);
    await ctx.clearGrants(ns);
  }
}
