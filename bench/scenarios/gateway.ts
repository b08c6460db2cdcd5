// 6. The gateway beside the direct path, in the same run, against the same grant and API server:
// one grant's calls by the minimal keep-alive client to the broker's gateway (with the grant's
// gateway token), straight to the API server and through a no-op Node proxy (the floor of the
// extra hop, bench/lib/noop-proxy.mjs; these two with a token of the same ServiceAccount for the
// API server, as the gateway forwards with), rotating, for GET latency at concurrency 1 and
// throughput at 32; revoke → 401 at the gateway (the broker's revoke endpoint, the gateway polled
// meanwhile); and the broker's resident memory with no grants and with N complete grants (the
// broker's exact objects, made the floor's way) in its gateway table.
import { GRANTS_PATH } from '../../src/shared/api.js';
import type { BenchBroker, BenchContext, Scenario } from '../lib/context.js';
import { processMemoryMb, threadsCpuMs } from '../lib/context.js';
import { credentialsFromKubeconfig, MinimalKubeClient } from '../lib/kube-client.js';
import type { BenchSettings } from '../lib/settings.js';
import { startNoopProxy, type NoopProxy } from '../lib/start-noop-proxy.js';
import { measureShadowCost, type ShadowCost } from './gateway-shadow.js';
import { closedLoop, median, nowMs, percentile } from '../lib/stats.js';

/** `noop`: the same token through a proxy that does nothing but the hop. */
export type GatewaySide = 'gateway' | 'direct' | 'noop';
const SIDES: readonly GatewaySide[] = ['gateway', 'direct', 'noop'];

export interface GatewayRun {
  c1P50Ms: Record<GatewaySide, number>;
  c1P95Ms: Record<GatewaySide, number>;
  c32Throughput: Record<GatewaySide, number>;
  c32P50Ms: Record<GatewaySide, number>;
  p50RatioC1: number;
  throughputRatioC32: number;
  /** The no-op proxy ÷ direct: the share of the ratios above that the hop alone costs. */
  noopP50RatioC1: number;
  noopThroughputRatioC32: number;
  /**
   * The broker process's CPU time during the gateway's own batches ÷ the requests it proxied. Its
   * work between them (the reaper, lease renewals, watches; about 10 ms a second, idle) is left out:
   * it varied from run to run and hid a difference between two gateways.
   */
  brokerCpuMsPerRequest: number;
  /** The same for the no-op proxy's process, during its batches. */
  noopCpuMsPerRequest: number;
}

export interface GatewayRevokeSample {
  /** Start of the revoke request → first 401 at the gateway. */
  to401Ms: number;
  /** Start → the broker's answer to the revoke request. */
  revokeCallMs: number;
  /** The same token sent straight to the API server right after the gateway's first 401. */
  directStatusThen: number;
  /** Whether a poll was in flight at the gateway when it ended the grant (and was cut). */
  cutInFlight: boolean;
}

export interface GatewayMemory {
  liveGrants: number;
  /** Highest VmRSS sampled over the settled window. */
  rssMb: number;
  peakRssMb: number;
}

export interface GatewayResults {
  runs: GatewayRun[];
  c1P50Ms: Record<GatewaySide, number>;
  c32Throughput: Record<GatewaySide, number>;
  p50RatioC1: number;
  throughputRatioC32: number;
  noopP50RatioC1: number;
  noopThroughputRatioC32: number;
  brokerCpuMsPerRequest: number;
  noopCpuMsPerRequest: number;
  revokes: GatewayRevokeSample[];
  revoke401Ms: number;
  revokeCallMs: number;
  empty: GatewayMemory;
  loaded: GatewayMemory;
  /** The same grants, a broker without its gateway: the gateway's share is the difference. */
  loadedWithoutGateway: GatewayMemory;
  creationSeconds: number;
  /** The same GET by a grant whose rule names a shadowRole vs one whose rule names none. */
  shadow: ShadowCost;
}

const CHUNK = 25;
const ROUNDS_C32 = 4;
const CREATE_CONCURRENCY = 64;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A token of the grant's ServiceAccount for the API server's audience, minted as admin: the grant's
 * own token is for the gateway only (the API server refuses it), so the direct side and the no-op
 * proxy act as the same identity with this one, as the gateway itself does upstream.
 */
async function apiServerToken(ctx: BenchContext, ns: string, grantId: string): Promise<string> {
  const path = `/api/v1/namespaces/${ns}/serviceaccounts/${encodeURIComponent(grantId)}/token`;
  const review = await ctx.adminKube.json<{ status?: { token?: string } }>('POST', path, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { audiences: [], expirationSeconds: 600 },
  });
  if (!review.status?.token) throw new Error(`no API-server token for ${grantId}`);
  return review.status.token;
}

/** The same grant through the gateway (its own token) and straight to the API server. */
async function sideClients(
  ctx: BenchContext,
  bb: BenchBroker,
  ns: string,
  grant: { grantId: string; token: string },
): Promise<Record<'gateway' | 'direct', MinimalKubeClient> & { apiToken: string }> {
  const api = credentialsFromKubeconfig(ctx.rbac.kubeconfigPath);
  const apiToken = await apiServerToken(ctx, ns, grant.grantId);
  return {
    gateway: new MinimalKubeClient({ server: bb.gatewayUrl!, ca: bb.ca, token: grant.token }),
    direct: new MinimalKubeClient({ server: api.server, ca: api.ca, token: apiToken }),
    apiToken,
  };
}

/** `sides` rotated by k: each side goes first, second and last equally often. */
const rotated = <T>(sides: readonly T[], k: number): T[] => {
  const i = k % sides.length;
  return [...sides.slice(i), ...sides.slice(0, i)];
};

/** A token of grant `grantId`'s ServiceAccount for the gateway at `audience`, as the broker mints them. */
async function gatewayToken(
  ctx: BenchContext,
  ns: string,
  grantId: string,
  audience: string,
): Promise<string> {
  const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(grantId)}/token`;
  const answer = await ctx.adminKube.json('POST', path, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { audiences: [audience], expirationSeconds: 600 },
  });
  return String((answer.status as { token: string }).token);
}

async function mustGet(client: MinimalKubeClient, path: string): Promise<void> {
  const res = await client.raw('GET', path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}`);
}

/** One repetition: c = 1 in rotating chunks, then c = 32 in rotating rounds. */
async function measureRun(
  pids: { broker: number; noop: number },
  clients: Record<GatewaySide, MinimalKubeClient>,
  path: string,
  settings: BenchSettings,
  rep: number,
): Promise<GatewayRun> {
  /** CPU of the process behind a side, during that side's batches only. */
  const cpuMs = { broker: 0, noop: 0 };
  const batch = async <T>(side: GatewaySide, run: () => Promise<T>): Promise<T> => {
    const pid = side === 'gateway' ? pids.broker : side === 'noop' ? pids.noop : undefined;
    const before = pid === undefined ? 0 : threadsCpuMs(pid);
    const result = await run();
    if (pid !== undefined) cpuMs[side === 'gateway' ? 'broker' : 'noop'] += threadsCpuMs(pid) - before;
    return result;
  };
  const sides = rotated(SIDES, rep);
  const c1: Record<GatewaySide, number[]> = { gateway: [], direct: [], noop: [] };
  for (let done = 0, k = 0; done < settings.gatewayGetCount; done += CHUNK, k += 1) {
    const n = Math.min(CHUNK, settings.gatewayGetCount - done);
    for (const side of rotated(sides, k)) {
      const { latencies } = await batch(side, () => closedLoop(n, 1, () => mustGet(clients[side], path)));
      c1[side].push(...latencies);
    }
  }
  const perRound = Math.ceil(settings.gatewayConcurrentCount / ROUNDS_C32);
  const c32 = {
    gateway: { n: 0, wallMs: 0, latencies: [] as number[] },
    direct: { n: 0, wallMs: 0, latencies: [] as number[] },
    noop: { n: 0, wallMs: 0, latencies: [] as number[] },
  };
  for (let k = 0; k < ROUNDS_C32; k += 1) {
    for (const side of rotated(sides, k)) {
      const { latencies, wallMs } = await batch(side, () =>
        closedLoop(perRound, 32, () => mustGet(clients[side], path)),
      );
      c32[side].n += perRound;
      c32[side].wallMs += wallMs;
      c32[side].latencies.push(...latencies);
    }
  }
  const proxied = (side: GatewaySide) => c1[side].length + c32[side].n;
  const cpuPerRequest = (pid: 'broker' | 'noop', side: GatewaySide) => cpuMs[pid] / proxied(side);
  const p50 = (side: GatewaySide) => percentile(c1[side], 50);
  const throughput = (side: GatewaySide) => (c32[side].n / c32[side].wallMs) * 1000;
  const both = <T>(f: (side: GatewaySide) => T): Record<GatewaySide, T> => ({
    gateway: f('gateway'),
    direct: f('direct'),
    noop: f('noop'),
  });
  return {
    c1P50Ms: both(p50),
    c1P95Ms: both((side) => percentile(c1[side], 95)),
    c32Throughput: both(throughput),
    c32P50Ms: both((side) => percentile(c32[side].latencies, 50)),
    p50RatioC1: p50('gateway') / p50('direct'),
    throughputRatioC32: throughput('gateway') / throughput('direct'),
    noopP50RatioC1: p50('noop') / p50('direct'),
    noopThroughputRatioC32: throughput('noop') / throughput('direct'),
    brokerCpuMsPerRequest: cpuPerRequest('broker', 'gateway'),
    noopCpuMsPerRequest: cpuPerRequest('noop', 'noop'),
  };
}

const isCut = (err: unknown): boolean =>
  err instanceof Error &&
  (err.message === 'aborted' ||
    err.message === 'socket hang up' ||
    (err as NodeJS.ErrnoException).code === 'ECONNRESET');

/** A grant, its first call through the gateway, then the broker's revoke while the gateway is polled. */
async function revokeSample(ctx: BenchContext, bb: BenchBroker, ns: string): Promise<GatewayRevokeSample> {
  const [jwt] = await ctx.presign(1);
  const grant = await bb.client.exchange(jwt!, ctx.exchangeBody(ns));
  const clients = await sideClients(ctx, bb, ns, grant);
  const path = `/api/v1/namespaces/${ns}/configmaps?limit=1`;
  try {
    // A gateway-mode grant has no self-revoke objects, so nothing of the exchange is still under way.
    await mustGet(clients.gateway, path);
    const t0 = nowMs();
    let revokeCallMs = NaN;
    const revoke = bb.broker
      .request('DELETE', `${GRANTS_PATH}/${encodeURIComponent(grant.grantId)}`, { token: grant.token })
      .then((r) => {
        revokeCallMs = nowMs() - t0;
        if (r.status !== 200) throw new Error(`revoke answered ${r.status}`);
      });
    let to401Ms: number;
    let cutInFlight = false;
    for (;;) {
      // The gateway cuts the grant's open requests when it learns of the end: a poll in flight
      // then fails (its connection is destroyed) and the next one is answered.
      const status = await clients.gateway.raw('GET', path).then(
        (r) => r.status,
        (err: unknown) => {
          if (!isCut(err)) throw err;
          cutInFlight = true;
          return undefined;
        },
      );
      if (status === undefined) continue;
      if (status === 401) {
        to401Ms = nowMs() - t0;
        break;
      }
      if (status !== 200) throw new Error(`the gateway answered ${status} while revoking`);
      if (nowMs() - t0 > 10_000)
        throw new Error('the gateway still forwarded the grant 10 s after its revoke');
      await sleep(2);
    }
    const directStatusThen = (await clients.direct.raw('GET', path)).status;
    await revoke;
    return { to401Ms, revokeCallMs, directStatusThen, cutInFlight };
  } finally {
    clients.gateway.close();
    clients.direct.close();
  }
}

/**
 * A fresh broker over `ns`, gateway on or off; with the gateway, `probes` are grants whose calls must
 * pass it first (proof that its start-up list put them in its table). Their tokens are minted here,
 * for this gateway's audience (its URL): a token for another audience is refused, as it should be.
 * Then RSS is sampled over a settled window.
 */
async function measureMemory(
  ctx: BenchContext,
  ns: string,
  liveGrants: number,
  opts: { gateway: boolean; probes?: string[] },
): Promise<GatewayMemory> {
  const bb = await ctx.startBroker([ns], { gateway: opts.gateway });
  try {
    if (opts.gateway) {
      const path = `/api/v1/namespaces/${ns}/configmaps?limit=1`;
      // Every gateway phase takes the same paths: a refusal without a token, then the probes.
      const anonymous = new MinimalKubeClient({ server: bb.gatewayUrl!, ca: bb.ca });
      const refused = await anonymous.raw('GET', path);
      anonymous.close();
      if (refused.status !== 401) throw new Error(`the gateway answered ${refused.status} without a token`);
      for (const grantId of opts.probes ?? []) {
        const token = await gatewayToken(ctx, ns, grantId, bb.gatewayUrl!);
        const c = new MinimalKubeClient({ server: bb.gatewayUrl!, ca: bb.ca, token });
        try {
          await mustGet(c, path);
        } finally {
          c.close();
        }
      }
    }
    // The reaper's first pass and the grant watch's list run at start; let them settle.
    await sleep(3000);
    let rssMb = processMemoryMb(bb.pid).rss;
    for (let i = 0; i < 20; i += 1) {
      await sleep(100);
      rssMb = Math.max(rssMb, processMemoryMb(bb.pid).rss);
    }
    return { liveGrants, rssMb, peakRssMb: processMemoryMb(bb.pid).hwm };
  } finally {
    await bb.stop();
  }
}

export const runGatewayBench: Scenario<GatewayResults> = async (ctx, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const runs: GatewayRun[] = [];
  const revokes: GatewayRevokeSample[] = [];
  const bb = await ctx.startBroker([ns], { gateway: true });
  try {
    const [jwt] = await ctx.presign(1);
    const grant = await bb.client.exchange(jwt!, ctx.exchangeBody(ns));
    if (grant.server !== bb.gatewayUrl) throw new Error('the exchange did not answer with the gateway');
    await ctx.adminKube.json('POST', `/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'bench-gateway' },
      data: { k: 'v' },
    });
    const path = `/api/v1/namespaces/${ns}/configmaps/bench-gateway`;
    const api = credentialsFromKubeconfig(ctx.rbac.kubeconfigPath);
    let noop: NoopProxy | undefined;
    let clients: Record<GatewaySide, MinimalKubeClient> | undefined;
    try {
      noop = await startNoopProxy(api);
      const { apiToken, ...sides } = await sideClients(ctx, bb, ns, grant);
      clients = { ...sides, noop: new MinimalKubeClient({ server: noop.url, ca: noop.ca, token: apiToken }) };
      // Warm-up: connections, the gateway's token review cache, JIT on every end.
      for (let i = 0; i < 20; i += 1) for (const c of Object.values(clients)) await mustGet(c, path);
      for (let rep = 0; rep < settings.reps; rep += 1) {
        const run = await measureRun({ broker: bb.pid, noop: noop.pid }, clients, path, settings, rep);
        runs.push(run);
        log(
          `  gateway run ${rep + 1}/${settings.reps}: GET p50 c1 ${run.c1P50Ms.gateway.toFixed(2)} vs direct ${run.c1P50Ms.direct.toFixed(2)} ms (ratio ${run.p50RatioC1.toFixed(2)}; no-op proxy ${run.c1P50Ms.noop.toFixed(2)} ms, ratio ${run.noopP50RatioC1.toFixed(2)}), c32 ${run.c32Throughput.gateway.toFixed(0)} vs ${run.c32Throughput.direct.toFixed(0)} /s (ratio ${run.throughputRatioC32.toFixed(2)}; no-op proxy ${run.c32Throughput.noop.toFixed(0)} /s, ratio ${run.noopThroughputRatioC32.toFixed(2)}); CPU per proxied GET: broker ${run.brokerCpuMsPerRequest.toFixed(2)} ms, no-op proxy ${run.noopCpuMsPerRequest.toFixed(2)} ms`,
        );
      }
    } finally {
      for (const c of Object.values(clients ?? {})) c.close();
      await noop?.stop();
    }
    for (let i = 0; i < settings.gatewayRevokeReps; i += 1) {
      const s = await revokeSample(ctx, bb, ns);
      revokes.push(s);
      log(
        `  gateway revoke ${i + 1}/${settings.gatewayRevokeReps}: 401 after ${s.to401Ms.toFixed(1)} ms (revoke answered after ${s.revokeCallMs.toFixed(1)} ms; API server then: ${s.directStatusThen})`,
      );
    }
  } finally {
    await bb.stop();
    await ctx.clearGrants(ns);
  }

  const shadow = await measureShadowCost(ctx, settings, log, ns);

  const scaleNs = ctx.namespaces.scale;
  const n = settings.gatewayGrants;
  let empty: GatewayMemory;
  let loaded: GatewayMemory;
  let loadedWithoutGateway: GatewayMemory;
  let creationSeconds: number;
  try {
    await ctx.clearGrants(scaleNs);
    empty = await measureMemory(ctx, scaleNs, 0, { gateway: true });
    log(`  gateway, 0 grants: RSS ${empty.rssMb.toFixed(1)} MiB (peak ${empty.peakRssMb.toFixed(1)})`);
    const target = ctx.target(scaleNs);
    const t0 = Date.now();
    const probes: string[] = [];
    await closedLoop(n, CREATE_CONCURRENCY, async (i) => {
      const g = await ctx.floorGrant(target, 'parallel');
      await g.settled;
      if (i === 0 || i === n - 1) probes.push(g.grantId);
      if ((i + 1) % 1000 === 0) log(`  created ${i + 1}/${n} grants`);
    });
    creationSeconds = (Date.now() - t0) / 1000;
    log(`  created ${n} grants in ${creationSeconds.toFixed(1)} s`);
    loaded = await measureMemory(ctx, scaleNs, n, { gateway: true, probes });
    log(`  gateway, ${n} grants: RSS ${loaded.rssMb.toFixed(1)} MiB (peak ${loaded.peakRssMb.toFixed(1)})`);
    loadedWithoutGateway = await measureMemory(ctx, scaleNs, n, { gateway: false });
    log(
      `  gateway off, ${n} grants: RSS ${loadedWithoutGateway.rssMb.toFixed(1)} MiB (peak ${loadedWithoutGateway.peakRssMb.toFixed(1)})`,
    );
  } finally {
    await ctx.clearGrants(scaleNs);
  }

  const side = (f: (r: GatewayRun) => Record<GatewaySide, number>) => ({
    gateway: median(runs.map((r) => f(r).gateway)),
    direct: median(runs.map((r) => f(r).direct)),
    noop: median(runs.map((r) => f(r).noop)),
  });
  return {
    runs,
    c1P50Ms: side((r) => r.c1P50Ms),
    c32Throughput: side((r) => r.c32Throughput),
    p50RatioC1: median(runs.map((r) => r.p50RatioC1)),
    throughputRatioC32: median(runs.map((r) => r.throughputRatioC32)),
    noopP50RatioC1: median(runs.map((r) => r.noopP50RatioC1)),
    noopThroughputRatioC32: median(runs.map((r) => r.noopThroughputRatioC32)),
    brokerCpuMsPerRequest: median(runs.map((r) => r.brokerCpuMsPerRequest)),
    noopCpuMsPerRequest: median(runs.map((r) => r.noopCpuMsPerRequest)),
    revokes,
    revoke401Ms: median(revokes.map((s) => s.to401Ms)),
    revokeCallMs: median(revokes.map((s) => s.revokeCallMs)),
    empty,
    loaded,
    loadedWithoutGateway,
    creationSeconds,
    shadow,
  };
};
