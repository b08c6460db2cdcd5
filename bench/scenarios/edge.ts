// 7. Edge mode's cost beside direct gateway mode, in the same run, against the same broker, grant and
// API server: one broker replica with its public listeners on and a tunnel to a real edge (the broker
// bundle's `edge` command) on loopback. The same keep-alive clients reach its gateway and exchange
// straight (direct) or through the edge (by the TLS server names the edge routes), alternating in
// rotating chunks: GET p50 at concurrency 1 (the edge's added latency per proxied GET), exchange p50,
// GET throughput at concurrency 32, each process's CPU per GET, and the edge's CPU per MB relayed over
// bulk GETs of a large ConfigMap (its byte counts from its own log lines).
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { dump } from 'js-yaml';
import { publicKeyPin } from '../../src/broker/edge-relay/tunnel-pool.js';
import { issue, makeCa } from '../../test/support/edge-pki.js';
import { ensureBrokerBuilt } from '../../test/support/ensure-built.js';
import { BenchBrokerClient } from '../lib/broker-client.js';
import type { BenchBroker, BenchContext, Scenario } from '../lib/context.js';
import { processCpuMs, processMemoryMb } from '../lib/context.js';
import { MinimalKubeClient } from '../lib/kube-client.js';
import type { BenchSettings } from '../lib/settings.js';
import { closedLoop, median, percentile } from '../lib/stats.js';

export type EdgeSide = 'edge' | 'direct';
const SIDES: readonly EdgeSide[] = ['edge', 'direct'];

const BROKER_NAME = 'broker.edge.bench';
const GATEWAY_NAME = 'gateway.edge.bench';
const TUNNEL_NAME = 'edge-tunnel.bench';
const CHUNK = 25;
const ROUNDS_C32 = 4;
/** A ConfigMap just under the API server's 1 MiB object limit: the bulk phase's payload. */
const BULK_BYTES = 900 * 1024;
const BULK_CONCURRENCY = 4;

export interface EdgeRun {
  getP50Ms: Record<EdgeSide, number>;
  exchangeP50Ms: Record<EdgeSide, number>;
  c32Throughput: Record<EdgeSide, number>;
  /** The broker's CPU over each side's GETs ÷ those GETs: the tunnel's share of the broker's work. */
  brokerCpuMsPerGet: Record<EdgeSide, number>;
  /** The edge's CPU over the edge side's GETs ÷ those GETs. */
  edgeCpuMsPerGet: number;
}

export interface EdgeResults {
  runs: EdgeRun[];
  getP50Ms: Record<EdgeSide, number>;
  /** Edge − direct, GET p50 at concurrency 1 (medians over the runs). */
  addedGetP50Ms: number;
  exchangeP50Ms: Record<EdgeSide, number>;
  addedExchangeP50Ms: number;
  c32Throughput: Record<EdgeSide, number>;
  /** Edge ÷ direct. */
  throughputRatioC32: number;
  brokerCpuMsPerGet: Record<EdgeSide, number>;
  edgeCpuMsPerGet: number;
  /** The edge's CPU over the bulk phase ÷ the MB it relayed (both directions, from its log). */
  edgeCpuMsPerMb: number;
  bulkMb: number;
  edgeRssMb: number;
}

/** The edge process: its log lines, its public and tunnel addresses. */
interface RunningEdge {
  child: ChildProcess;
  lines: string[];
  port: number;
  tunnelPort: number;
  waitFor(match: (l: string) => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function startEdge(entry: string, config: string): Promise<RunningEdge> {
  const child = spawn(process.execPath, [entry, 'edge', '--config', config], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
  const waitFor = async (match: (l: string) => boolean, timeoutMs = 20_000) => {
    const end = Date.now() + timeoutMs;
    while (!lines.some(match)) {
      if (child.exitCode !== null) throw new Error(`the edge exited:\n${lines.join('\n')}`);
      if (Date.now() > end) throw new Error(`the edge did not log what was awaited:\n${lines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor((l) => l.includes('"edge listening"'));
  const up = JSON.parse(lines.find((l) => l.includes('"edge listening"'))!) as {
    address: string;
    tunnelAddress: string;
  };
  const portOf = (a: string) => Number(a.slice(a.lastIndexOf(':') + 1));
  return {
    child,
    lines,
    port: portOf(up.address),
    tunnelPort: portOf(up.tunnelAddress),
    waitFor,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The PKI of one run: the broker's serving certificate for both routed names, the tunnel's pair. */
function edgePki(dir: string) {
  const servingCa = makeCa(dir, 'serving');
  const serving = issue(dir, servingCa, 'broker-serving', {
    server: [`DNS:${BROKER_NAME}`, `DNS:${GATEWAY_NAME}`, 'IP:127.0.0.1'],
  });
  const edgeCa = makeCa(dir, 'edge');
  const tunnel = issue(dir, edgeCa, 'edge-tunnel', { server: [`DNS:${TUNNEL_NAME}`] });
  const clientCa = makeCa(dir, 'broker-client');
  const client = issue(dir, clientCa, 'broker-client', { client: true });
  return { servingCa, serving, edgeCa, tunnel, clientCa, client };
}

function writeEdgeConfig(dir: string, pki: ReturnType<typeof edgePki>): string {
  const file = join(dir, 'edge.yaml');
  writeFileSync(
    file,
    dump({
      listen: { host: '127.0.0.1', port: 0 },
      routes: [
        { serverName: BROKER_NAME, target: 'broker' },
        { serverName: GATEWAY_NAME, target: 'gateway' },
      ],
      tunnel: {
        listen: { host: '127.0.0.1', port: 0 },
        tls: { certFile: pki.tunnel.certFile, keyFile: pki.tunnel.keyFile },
        clientCaFile: pki.clientCa.certFile,
        clientKeySha256: [publicKeyPin(new X509Certificate(pki.client.cert).raw)],
      },
    }),
  );
  return file;
}

/** The gateway token's clients: straight to the gateway's port, and to the edge by its gateway name. */
function getClients(bb: BenchBroker, edge: RunningEdge, token: string, ca: Buffer) {
  return {
    direct: new MinimalKubeClient({ server: bb.gatewayUrl!, ca, token }),
    edge: new MinimalKubeClient(
      { server: `https://127.0.0.1:${edge.port}`, ca, token },
      { servername: GATEWAY_NAME },
    ),
  };
}

/** `sides` rotated by k: each side goes first equally often. */
const rotated = <T>(sides: readonly T[], k: number): T[] => {
  const i = k % sides.length;
  return [...sides.slice(i), ...sides.slice(0, i)];
};

async function mustGet(client: MinimalKubeClient, path: string): Promise<void> {
  const res = await client.raw('GET', path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${res.text.slice(0, 200)}`);
}

/** CPU of the broker and the edge, each chunk's share booked to the side that ran it. */
function cpuBook(pids: { broker: number; edge: number }) {
  const broker: Record<EdgeSide, number> = { edge: 0, direct: 0 };
  const edge: Record<EdgeSide, number> = { edge: 0, direct: 0 };
  return {
    broker,
    edge,
    async run<T>(side: EdgeSide, work: () => Promise<T>): Promise<T> {
      const before = { broker: processCpuMs(pids.broker), edge: processCpuMs(pids.edge) };
      const out = await work();
      broker[side] += processCpuMs(pids.broker) - before.broker;
      edge[side] += processCpuMs(pids.edge) - before.edge;
      return out;
    },
  };
}

/** One repetition: GETs at c = 1 and c = 32, then exchanges, each side in turn in rotating chunks. */
async function measureRun(
  ctx: BenchContext,
  clients: Record<EdgeSide, { kube: MinimalKubeClient; broker: BenchBrokerClient }>,
  pids: { broker: number; edge: number },
  path: string,
  settings: BenchSettings,
  rep: number,
): Promise<EdgeRun> {
  const cpu = cpuBook(pids);
  const sides = rotated(SIDES, rep);
  const c1: Record<EdgeSide, number[]> = { edge: [], direct: [] };
  for (let done = 0, k = 0; done < settings.gatewayGetCount; done += CHUNK, k += 1) {
    const n = Math.min(CHUNK, settings.gatewayGetCount - done);
    for (const side of rotated(sides, k)) {
      const { latencies } = await cpu.run(side, () =>
        closedLoop(n, 1, () => mustGet(clients[side].kube, path)),
      );
      c1[side].push(...latencies);
    }
  }
  const perRound = Math.ceil(settings.gatewayConcurrentCount / ROUNDS_C32);
  const c32 = { edge: { n: 0, wallMs: 0 }, direct: { n: 0, wallMs: 0 } };
  for (let k = 0; k < ROUNDS_C32; k += 1)
    for (const side of rotated(sides, k)) {
      const { wallMs } = await cpu.run(side, () =>
        closedLoop(perRound, 32, () => mustGet(clients[side].kube, path)),
      );
      c32[side].n += perRound;
      c32[side].wallMs += wallMs;
    }
  const gets = (side: EdgeSide) => c1[side].length + c32[side].n;
  const brokerCpuMsPerGet = {
    edge: cpu.broker.edge / gets('edge'),
    direct: cpu.broker.direct / gets('direct'),
  };
  const exchanges: Record<EdgeSide, number[]> = { edge: [], direct: [] };
  const perSide = settings.quick ? 6 : 20;
  const jwts = await ctx.presign(2 * perSide + 2);
  // Each side's connection afresh after the GETs' phases (an idle one was dropped), outside the figures.
  for (const side of sides)
    await clients[side].broker.exchange(jwts.pop()!, ctx.exchangeBody(ctx.namespaces.exchange));
  for (let k = 0; k < perSide / 2; k += 1)
    for (const side of rotated(sides, k)) {
      const { latencies } = await closedLoop(2, 1, () =>
        clients[side].broker.exchange(jwts.pop()!, ctx.exchangeBody(ctx.namespaces.exchange)),
      );
      exchanges[side].push(...latencies);
    }
  const both = (f: (side: EdgeSide) => number): Record<EdgeSide, number> => ({
    edge: f('edge'),
    direct: f('direct'),
  });
  return {
    getP50Ms: both((side) => percentile(c1[side], 50)),
    exchangeP50Ms: both((side) => percentile(exchanges[side], 50)),
    c32Throughput: both((side) => (c32[side].n / c32[side].wallMs) * 1000),
    brokerCpuMsPerGet,
    edgeCpuMsPerGet: cpu.edge.edge / gets('edge'),
  };
}

/** Bytes the edge relayed on connections it closed since log line `since` (its own accounting). */
function relayedBytes(edge: RunningEdge, since: number): { bytes: number; connections: number } {
  let bytes = 0;
  let connections = 0;
  for (const l of edge.lines.slice(since)) {
    if (!l.includes('"connection relayed"')) continue;
    const line = JSON.parse(l) as { bytesFromClient: number; bytesToClient: number };
    bytes += line.bytesFromClient + line.bytesToClient;
    connections += 1;
  }
  return { bytes, connections };
}

/** Large GETs through the edge, their connections then closed: the edge's CPU ÷ the MB it relayed. */
async function measureBulk(
  ctx: BenchContext,
  edge: RunningEdge,
  client: () => MinimalKubeClient,
  settings: BenchSettings,
): Promise<{ cpuMsPerMb: number; mb: number }> {
  const ns = ctx.namespaces.exchange;
  await ctx.adminKube.json('POST', `/api/v1/namespaces/${ns}/configmaps`, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'bench-edge-bulk' },
    data: { blob: 'x'.repeat(BULK_BYTES) },
  });
  const path = `/api/v1/namespaces/${ns}/configmaps/bench-edge-bulk`;
  const bulk = client();
  await mustGet(bulk, path); // warm: the connections, the gateway's review cache
  bulk.close();
  await settle(edge);
  const since = edge.lines.length;
  const cpuBefore = processCpuMs(edge.child.pid!);
  const measured = client();
  await closedLoop(settings.quick ? 12 : 48, BULK_CONCURRENCY, () => mustGet(measured, path));
  measured.close();
  await settle(edge);
  const cpuMs = processCpuMs(edge.child.pid!) - cpuBefore;
  const { bytes, connections } = relayedBytes(edge, since);
  if (connections === 0) throw new Error('the edge logged no relayed connection for the bulk GETs');
  const mb = bytes / 1e6;
  return { cpuMsPerMb: cpuMs / mb, mb };
}

/** Until the edge has logged nothing new for a while: the closed connections' lines are all in. */
async function settle(edge: RunningEdge): Promise<void> {
  let seen = -1;
  for (let i = 0; i < 100 && seen !== edge.lines.length; i += 1) {
    seen = edge.lines.length;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const runEdgeBench: Scenario<EdgeResults> = async (ctx, settings, log) => {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-bench-edge-'));
  const pki = edgePki(dir);
  const edge = await startEdge(await ensureBrokerBuilt(), writeEdgeConfig(dir, pki));
  const ns = ctx.namespaces.exchange;
  const runs: EdgeRun[] = [];
  let bb: BenchBroker | undefined;
  const open: { close(): void }[] = [];
  try {
    const tls = { certFile: pki.serving.certFile, keyFile: pki.serving.keyFile, ca: pki.servingCa.cert };
    bb = await ctx.startBroker([ns], {
      gateway: true,
      tls,
      config: {
        edge: {
          addresses: [`127.0.0.1:${edge.tunnelPort}`],
          serverName: TUNNEL_NAME,
          caFile: pki.edgeCa.certFile,
          clientTls: { certFile: pki.client.certFile, keyFile: pki.client.keyFile },
        },
      },
    });
    await edge.waitFor((l) => l.includes('"tunnel up"'));
    const ca = pki.servingCa.cert;
    const [jwt] = await ctx.presign(1);
    const grant = await bb.client.exchange(jwt!, ctx.exchangeBody(ns));
    await ctx.adminKube.json('POST', `/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'bench-edge' },
      data: { k: 'v' },
    });
    const path = `/api/v1/namespaces/${ns}/configmaps/bench-edge`;
    const kube = getClients(bb, edge, grant.token, ca);
    const viaEdge = new BenchBrokerClient(`https://127.0.0.1:${edge.port}`, ca, { servername: BROKER_NAME });
    open.push(kube.edge, kube.direct, viaEdge);
    const clients = {
      edge: { kube: kube.edge, broker: viaEdge },
      direct: { kube: kube.direct, broker: bb.client },
    };
    // Warm-up: connections on both paths, the gateway's token review cache, JIT in every process.
    for (let i = 0; i < 20; i += 1) for (const side of SIDES) await mustGet(clients[side].kube, path);
    const pids = { broker: bb.pid, edge: edge.child.pid! };
    for (let rep = 0; rep < settings.reps; rep += 1) {
      const run = await measureRun(ctx, clients, pids, path, settings, rep);
      runs.push(run);
      log(
        `  edge run ${rep + 1}/${settings.reps}: GET p50 c1 ${run.getP50Ms.edge.toFixed(2)} ms through the edge vs ${run.getP50Ms.direct.toFixed(2)} ms direct (added ${(run.getP50Ms.edge - run.getP50Ms.direct).toFixed(2)} ms); exchange p50 ${run.exchangeP50Ms.edge.toFixed(1)} vs ${run.exchangeP50Ms.direct.toFixed(1)} ms; c32 ${run.c32Throughput.edge.toFixed(0)} vs ${run.c32Throughput.direct.toFixed(0)} GET/s; CPU per GET: edge ${run.edgeCpuMsPerGet.toFixed(3)} ms, broker ${run.brokerCpuMsPerGet.edge.toFixed(3)} ms via the edge vs ${run.brokerCpuMsPerGet.direct.toFixed(3)} ms direct`,
      );
    }
    const bulk = await measureBulk(
      ctx,
      edge,
      () =>
        new MinimalKubeClient(
          { server: `https://127.0.0.1:${edge.port}`, ca, token: grant.token },
          { servername: GATEWAY_NAME },
        ),
      settings,
    );
    log(
      `  edge bulk: ${bulk.mb.toFixed(1)} MB relayed (900 KiB GETs at concurrency ${BULK_CONCURRENCY}): edge CPU ${bulk.cpuMsPerMb.toFixed(2)} ms per MB`,
    );
    return summarize(runs, bulk, processMemoryMb(edge.child.pid!).rss);
  } finally {
    for (const c of open) c.close();
    await bb?.stop();
    await edge.stop();
    await ctx.clearGrants(ns);
    for (const name of ['bench-edge', 'bench-edge-bulk'])
      await ctx.adminKube
        .json('DELETE', `/api/v1/namespaces/${ns}/configmaps/${name}`)
        .catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
};

function summarize(
  runs: EdgeRun[],
  bulk: { cpuMsPerMb: number; mb: number },
  edgeRssMb: number,
): EdgeResults {
  const side = (f: (r: EdgeRun) => Record<EdgeSide, number>) => ({
    edge: median(runs.map((r) => f(r).edge)),
    direct: median(runs.map((r) => f(r).direct)),
  });
  return {
    runs,
    getP50Ms: side((r) => r.getP50Ms),
    addedGetP50Ms: median(runs.map((r) => r.getP50Ms.edge - r.getP50Ms.direct)),
    exchangeP50Ms: side((r) => r.exchangeP50Ms),
    addedExchangeP50Ms: median(runs.map((r) => r.exchangeP50Ms.edge - r.exchangeP50Ms.direct)),
    c32Throughput: side((r) => r.c32Throughput),
    throughputRatioC32: median(runs.map((r) => r.c32Throughput.edge / r.c32Throughput.direct)),
    brokerCpuMsPerGet: side((r) => r.brokerCpuMsPerGet),
    edgeCpuMsPerGet: median(runs.map((r) => r.edgeCpuMsPerGet)),
    edgeCpuMsPerMb: bulk.cpuMsPerMb,
    bulkMb: bulk.mb,
    edgeRssMb,
  };
}
