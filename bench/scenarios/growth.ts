// 8. Cost as work grows (issue 28): with 0, 1,000, 5,000 and 10,000 live grants (BENCH_GROWTH_SIZES)
// either all in one namespace or spread evenly over ten, what the broker's exchange costs in the
// namespace measured (the one, or the first of the ten), and what everyone else there notices: an
// unrelated identity's GET and a job's apply. Live grants are the broker's exact objects, made by
// the admin in parallel (bench/lib/live-grants.ts), kept across the sizes of a layout and removed
// after it; at the end the scenario checks that none is left. Each size gets a fresh broker over
// the layout's namespaces (reaper at the shipped default interval, whose first pass, listing every
// grant and record, starts with it), and its own load figures (bench/lib/foreign-load.ts).
// BENCH_GROWTH_PROFILE=1: at the largest size, CPU profiles of the broker (--cpu-prof, the whole
// size) and of the API server (pprof, over the concurrency-32 batch) in .cache/bench-profiles/.
import type { BenchBroker, BenchContext, Scenario } from '../lib/context.js';
import { processCpuMs } from '../lib/context.js';
import type { BenchSettings } from '../lib/settings.js';
import { credentialsFromKubeconfig, MinimalKubeClient } from '../lib/kube-client.js';
import { watchForeignLoad, type ScenarioNoise } from '../lib/foreign-load.js';
import { closedLoop, nowMs, summarize, type LatencySummary } from '../lib/stats.js';
import { fetchApiServerProfile, waitForQuiet } from '../lib/control-plane-cpu.js';
import {
  addLiveGrants,
  countGrantObjects,
  removeGrantObjects,
  SEED_LABEL,
  spreadCounts,
} from '../lib/live-grants.js';
import { PART_LABEL } from '../../src/broker/naming.js';

export type GrowthLayout = 'single' | 'spread';

export interface GrowthCell {
  layout: GrowthLayout;
  liveGrants: number;
  /** Of them, in the namespace measured. */
  inNamespace: number;
  exchangeC1: LatencySummary & { throughput: number };
  exchangeC32: LatencySummary & { throughput: number };
  /** CPU per exchange over the concurrency-32 batch until its self-revoke pairs exist. */
  apiServerCpuMsPerExchange: number;
  brokerCpuMsPerExchange: number;
  /** An unrelated identity's GET of a ConfigMap there (its permission: a RoleBinding there). */
  get: LatencySummary;
  /** A job's (a grant's) server-side apply of a ConfigMap there: the PATCH `kubectl apply --server-side` sends. */
  apply: LatencySummary;
  /**
   * The broker's CPU per second over the GET/apply window, when it serves nothing: its background
   * work, its first reaper pass included.
   */
  brokerIdleCpuMsPerS: number;
  /** Exchanges whose self-revoke pair the broker could not make (it logs each; the grant still works). */
  selfRevokeFailures: number;
  /** Exchanges the broker answered with an error (their latencies count, as a client waits them too). */
  failedExchanges: number;
  noise: ScenarioNoise;
}

export interface GrowthResults {
  sizes: number[];
  cells: GrowthCell[];
  /** Seconds spent making the live grants of each layout (every size), and removing them. */
  seedSeconds: Partial<Record<GrowthLayout, number>>;
  removeSeconds: Partial<Record<GrowthLayout, number>>;
  /** Grant objects and records of the scenario found after it removed them (must be 0). */
  leftovers: number;
  wallSeconds: number;
  /** Profiles written (BENCH_GROWTH_PROFILE=1). */
  profiles: string[];
}

/** Between turns of the GET/apply window: a steady, light load, not a flood. */
const WINDOW_PAUSE_MS = 20;
const PROBE_CONFIGMAP = 'growth-probe';
const JOB_CONFIGMAP = 'growth-job';
const BYSTANDER = 'growth-bystander';
const API_PROFILE_SECONDS = 10;
const BROKER_SETTLE_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;

interface Layout {
  layout: GrowthLayout;
  namespaces: string[];
  measured: string;
}

/**
 * An unrelated identity in the measured namespace, as a co-tenant would have: a ServiceAccount
 * allowed to read ConfigMaps there by its own Role and RoleBinding; and the ConfigMap it reads.
 */
async function bystanderClient(ctx: BenchContext, namespace: string): Promise<MinimalKubeClient> {
  const admin = ctx.adminKube;
  const ns = `/api/v1/namespaces/${enc(namespace)}`;
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${enc(namespace)}`;
  await admin.json('POST', `${ns}/serviceaccounts`, { metadata: { name: BYSTANDER } });
  await admin.json('POST', `${rbac}/roles`, {
    metadata: { name: BYSTANDER },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  });
  await admin.json('POST', `${rbac}/rolebindings`, {
    metadata: { name: BYSTANDER },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: BYSTANDER },
    subjects: [{ kind: 'ServiceAccount', name: BYSTANDER, namespace }],
  });
  await admin.json('POST', `${ns}/configmaps`, { metadata: { name: PROBE_CONFIGMAP }, data: { a: 'b' } });
  const tr = await admin.json<{ status: { token: string } }>(
    'POST',
    `${ns}/serviceaccounts/${BYSTANDER}/token`,
    { spec: { audiences: [], expirationSeconds: 7200 } },
  );
  const creds = credentialsFromKubeconfig(process.env.K8S_EA_ADMIN_KUBECONFIG ?? '');
  return new MinimalKubeClient({ server: creds.server, ca: creds.ca, token: tr.status.token });
}

/** Self-revoke RoleBindings the broker made in `namespace` (not the live grants'). */
async function exchangePairs(ctx: BenchContext, namespace: string): Promise<number> {
  const sel = enc(`${PART_LABEL}=revoke,!${SEED_LABEL}`);
  const path = `/apis/rbac.authorization.k8s.io/v1/namespaces/${enc(namespace)}/rolebindings?labelSelector=${sel}`;
  return (await ctx.adminKube.json<{ items: unknown[] }>('GET', path)).items.length;
}

/** The broker's log line for a self-revoke pair it could not make (grants/creation.ts). */
const PAIR_FAILED = 'could not create the self-revoke permission';
const pairFailures = (bb: BenchBroker) => bb.broker.stderr.filter((l) => l.includes(PAIR_FAILED));

/**
 * Waits until the broker made, or logged that it could not make, the self-revoke pair of every
 * exchange so far (it does so after answering). Returns how many it could not make.
 */
async function settlePairs(
  ctx: BenchContext,
  bb: BenchBroker,
  namespace: string,
  exchanges: number,
): Promise<number> {
  const deadline = Date.now() + 120_000;
  while ((await exchangePairs(ctx, namespace)) + pairFailures(bb).length < exchanges) {
    if (Date.now() > deadline) throw new Error('the self-revoke pairs did not all appear within 120 s');
    await sleep(100);
  }
  return pairFailures(bb).length;
}

/** GETs by the bystander and applies by the job, by turns, for `seconds`. */
async function getApplyWindow(
  bystander: MinimalKubeClient,
  job: MinimalKubeClient,
  namespace: string,
  seconds: number,
): Promise<{ get: number[]; apply: number[] }> {
  const getPath = `/api/v1/namespaces/${enc(namespace)}/configmaps/${PROBE_CONFIGMAP}`;
  const applyPath = `/api/v1/namespaces/${enc(namespace)}/configmaps/${JOB_CONFIGMAP}?fieldManager=kubectl&force=true`;
  const get: number[] = [];
  const apply: number[] = [];
  const until = nowMs() + seconds * 1000;
  for (let i = 0; nowMs() < until; i += 1) {
    let t = nowMs();
    await bystander.json('GET', getPath);
    get.push(nowMs() - t);
    t = nowMs();
    // A real write each time: the data changes.
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: JOB_CONFIGMAP },
      data: { i: String(i) },
    };
    const res = await job.raw('PATCH', applyPath, body, 'application/apply-patch+yaml');
    if (res.status !== 200 && res.status !== 201)
      throw new Error(`apply answered ${res.status}: ${res.text.slice(0, 300)}`);
    apply.push(nowMs() - t);
    await sleep(WINDOW_PAUSE_MS);
  }
  return { get, apply };
}

/** One size of one layout, with a fresh broker. */
async function measureCell(
  ctx: BenchContext,
  settings: BenchSettings,
  l: Layout,
  counts: { liveGrants: number; inNamespace: number },
  bystander: MinimalKubeClient,
  profile: { on: boolean; files: string[] },
  log: (msg: string) => void,
): Promise<GrowthCell> {
  const stopNoise = watchForeignLoad([process.pid, ctx.apiServerPid]);
  const body = ctx.exchangeBody(l.measured);
  const tokens = await ctx.presign(2 + settings.growthC1Count + settings.growthC32Count);
  const bb = await ctx.startBroker(l.namespaces, {
    profiled: profile.on,
    reaperIntervalSeconds: settings.growthWindowSeconds - 1,
  });
  let job: MinimalKubeClient | undefined;
  try {
    // The job: a grant of the bench's deployer role in the measured namespace (also the broker's warm-up).
    const grant = await bb.client.exchange(tokens[0]!, body);
    const creds = credentialsFromKubeconfig(process.env.K8S_EA_ADMIN_KUBECONFIG ?? '');
    job = new MinimalKubeClient({ server: creds.server, ca: creds.ca, token: grant.token });
    // Past the broker's start (its first reaper pass begins then), so the window holds one pass of
    // its steady state: the reaper runs every window − 1 s.
    await sleep(BROKER_SETTLE_MS);
    const brokerCpu0 = processCpuMs(bb.pid);
    const windowStart = nowMs();
    const window = await getApplyWindow(bystander, job, l.measured, settings.growthWindowSeconds);
    const brokerIdleCpuMsPerS = ((processCpuMs(bb.pid) - brokerCpu0) / (nowMs() - windowStart)) * 1000;

    await bb.client.exchange(tokens[1]!, body);
    let next = 2;
    // An exchange the broker refuses (e.g. 503: the API server did not answer within its deadline)
    // is counted, not fatal: in a namespace full of grants on a busy machine that is the finding.
    const failed: string[] = [];
    const exchange = () =>
      bb.client.exchange(tokens[next++]!, body).catch((err: unknown) => void failed.push(String(err)));
    const c1 = await closedLoop(settings.growthC1Count, 1, exchange);
    let made = 2 + settings.growthC1Count - failed.length;
    await settlePairs(ctx, bb, l.measured, made);

    const cpu0 = [processCpuMs(ctx.apiServerPid), processCpuMs(bb.pid)];
    const apiProfile = profile.on
      ? fetchApiServerProfile(API_PROFILE_SECONDS, `apiserver-growth-${l.layout}-${counts.liveGrants}.pb.gz`)
      : undefined;
    const n = settings.growthC32Count;
    const c32 = await closedLoop(n, 32, exchange);
    made = 2 + settings.growthC1Count + n - failed.length;
    if (failed.length > 0) log(`    ${failed.length} exchanges failed; first: ${failed[0]?.slice(0, 300)}`);
    const selfRevokeFailures = await settlePairs(ctx, bb, l.measured, made);
    if (selfRevokeFailures > 0)
      log(`    ${selfRevokeFailures} self-revoke pairs failed; first: ${pairFailures(bb)[0]?.slice(0, 400)}`);
    const [apiCpu, brokerCpu] = [ctx.apiServerPid, bb.pid].map(
      (pid, i) => (processCpuMs(pid) - cpu0[i]!) / n,
    );
    if (apiProfile) profile.files.push(await apiProfile);
    return {
      layout: l.layout,
      ...counts,
      exchangeC1: { ...summarize(c1.latencies), throughput: (settings.growthC1Count / c1.wallMs) * 1000 },
      exchangeC32: { ...summarize(c32.latencies), throughput: (n / c32.wallMs) * 1000 },
      apiServerCpuMsPerExchange: apiCpu!,
      brokerCpuMsPerExchange: brokerCpu!,
      get: summarize(window.get),
      apply: summarize(window.apply),
      brokerIdleCpuMsPerS,
      selfRevokeFailures,
      failedExchanges: failed.length,
      noise: stopNoise(),
    };
  } finally {
    job?.close();
    await bb.stop();
    // The exchanges' grants go; the live grants stay for the next size.
    await removeGrantObjects(ctx.adminKube, [l.measured], ctx.rbac.brokerNamespace, false);
  }
}

const cellLine = (c: GrowthCell): string =>
  `  ${c.layout} ${c.liveGrants} (${c.inNamespace} here): exchange p50 ${c.exchangeC1.p50.toFixed(1)} ms, ` +
  `${c.exchangeC32.throughput.toFixed(1)}/s at 32 (API server ${c.apiServerCpuMsPerExchange.toFixed(1)} ms, ` +
  `broker ${c.brokerCpuMsPerExchange.toFixed(1)} ms CPU each); GET p50 ${c.get.p50.toFixed(2)} ms, ` +
  `apply p50 ${c.apply.p50.toFixed(2)} ms; broker idle ${c.brokerIdleCpuMsPerS.toFixed(0)} ms/s; ` +
  `load ${c.noise.loadAtStart.toFixed(2)}, ${c.noise.foreignCores} cores of other work`;

/** Every size of one layout: live grants added before each, all removed after the last. */
async function runLayout(
  ctx: BenchContext,
  settings: BenchSettings,
  l: Layout,
  results: GrowthResults,
  log: (msg: string) => void,
): Promise<void> {
  const bystander = await bystanderClient(ctx, l.measured);
  const largest = Math.max(...settings.growthSizes);
  const targets = l.namespaces.map((ns) => ({ ...ctx.target(ns) }));
  let have = targets.map(() => 0);
  try {
    for (const size of settings.growthSizes) {
      // No live grant anywhere is the same cell for both layouts: measured once, as `single`.
      if (size === 0 && l.layout === 'spread' && settings.growthLayouts.includes('single')) continue;
      const t0 = Date.now();
      have = await addLiveGrants(ctx.adminKube, targets, have, spreadCounts(size, targets.length), log);
      results.seedSeconds[l.layout] = (results.seedSeconds[l.layout] ?? 0) + (Date.now() - t0) / 1000;
      const waited = await waitForQuiet(ctx.apiServerPid);
      log(
        `  ${l.layout}: ${size} live grants made in ${((Date.now() - t0) / 1000).toFixed(1)} s (control plane settled in ${(waited / 1000).toFixed(1)} s)`,
      );
      const profile = {
        on: process.env.BENCH_GROWTH_PROFILE === '1' && size === largest,
        files: results.profiles,
      };
      const cell = await measureCell(
        ctx,
        settings,
        l,
        { liveGrants: size, inNamespace: have[0]! },
        bystander,
        profile,
        log,
      );
      results.cells.push(cell);
      log(cellLine(cell));
    }
  } finally {
    bystander.close();
    const t0 = Date.now();
    await removeGrantObjects(ctx.adminKube, l.namespaces, ctx.rbac.brokerNamespace, true);
    results.removeSeconds[l.layout] = (Date.now() - t0) / 1000;
    await waitForQuiet(ctx.apiServerPid);
  }
}

export const runGrowthBench: Scenario<GrowthResults> = async (ctx, settings, log) => {
  const started = Date.now();
  const { single, spread } = ctx.namespaces.growth;
  const layouts: Layout[] = [
    { layout: 'single' as const, namespaces: [single], measured: single },
    { layout: 'spread' as const, namespaces: spread, measured: spread[0]! },
  ].filter((l) => settings.growthLayouts.includes(l.layout));
  const results: GrowthResults = {
    sizes: settings.growthSizes,
    cells: [],
    seedSeconds: {},
    removeSeconds: {},
    leftovers: 0,
    wallSeconds: 0,
    profiles: [],
  };
  const every = [single, ...spread];
  try {
    for (const l of layouts) await runLayout(ctx, settings, l, results, log);
  } finally {
    // Whatever happened above: nothing the scenario made may stay behind.
    await removeGrantObjects(ctx.adminKube, every, ctx.rbac.brokerNamespace, true);
    await removeGrantObjects(ctx.adminKube, every, ctx.rbac.brokerNamespace, false);
    results.leftovers =
      (await countGrantObjects(ctx.adminKube, every, ctx.rbac.brokerNamespace, true)) +
      (await countGrantObjects(ctx.adminKube, every, ctx.rbac.brokerNamespace, false));
  }
  results.wallSeconds = (Date.now() - started) / 1000;
  log(
    `  growth: ${results.leftovers} grant objects left after removal; ${results.wallSeconds.toFixed(0)} s in all`,
  );
  if (results.leftovers > 0) throw new Error(`growth: ${results.leftovers} grant objects were left behind`);
  return results;
};
