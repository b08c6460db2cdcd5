// Edge mode end to end across a network boundary the test builds (support/edge-netns.ts): a
// "runner" namespace that reaches only the edge, an "edge" namespace that opens no connection at
// all, and the brokers on the host side (with the API server, both on loopback) dialling out to
// the edge. The first replica runs edge-only (publicListeners: false): it binds no port but its
// internal one, so everything the runner does reaches it through the edge or not at all. The real
// action bundles run in the runner namespace and the real kubectl goes through the gateway; the
// edge is the real broker bundle's `edge` command. Nothing is faked.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { RunningBroker } from '../../test/support/broker.js';
import { clusterEndpoint, kubectlAdmin, sleep } from '../../test/support/cluster.js';
import { ensureBrokerBuilt } from '../../test/support/ensure-built.js';
import { issue, makeCa, type CertFiles } from '../../test/support/edge-pki.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { freePort } from '../../test/support/free-port.js';
import { brokerRequest } from '../../test/support/broker-request.js';
import { ensureActionBuilt, type RunnerJob } from '../../test/support/runner.js';
import { publicKeyPin } from '../../src/broker/edge-relay/tunnel-pool.js';
import { createEdgeNetwork, IP, type EdgeNetwork, type Started } from './support/edge-netns.js';
import { listeningPorts } from './support/listening-ports.js';

const TOOLS = join(import.meta.dirname, 'support', 'ns-tools.mjs');
const BROKER_NAME = 'broker.edge.test';
const GATEWAY_NAME = 'gateway.edge.test';
const PUBLIC_PORT = 8443;
const TUNNEL_PORT = 8500;
const TOKEN_PORT = 8099;
const BACKOFF = { initialMs: 100, maxMs: 2_000 };
const JWT = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g;

let dir: string;
let net: EdgeNetwork;
let env: BrokerEnv;
let entry: string;
let edgeConfig: string;
let edge: Started;
const edgeOutput: string[] = [];
let tap: Started;
let tokenServer: Started;
const brokers: RunningBroker[] = [];
let job: RunnerJob;
const idTokens: string[] = [];
/** The job's grant tokens, read from the runner's files while the job holds them. */
const grantTokens: string[] = [];
let runnerCa: CertFiles;
let brokerTls: { certFile: string; keyFile: string; ca: Buffer };
let brokerConfig: Record<string, unknown>;
let capture: string;

async function startEdge(): Promise<Started> {
  const started = net.start(net.edgeNs, process.execPath, [entry, 'edge', '--config', edgeConfig]);
  started.child.on('exit', () => edgeOutput.push(...started.lines));
  await started.line((l) => l.includes('edge listening'));
  return started;
}

/** Edge log lines saying how many tunnels are up, the last one's count. */
async function tunnelsUp(n: number, since = 0): Promise<void> {
  await edge.line(
    (l) => l.includes('"tunnel up"') && l.includes(`"tunnels":${n}`) && edge.lines.indexOf(l) >= since,
  );
}

const kubectl = (args: string[]) => job.exec(IP, ['netns', 'exec', net.runnerNs, 'kubectl', ...args]);

/** kubectl that must succeed: a failure shows what kubectl said. */
async function kubectlOk(args: string[]) {
  const r = await kubectl(args);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return r;
}

/** kubectl until it succeeds (a job's retry), at most `tries` times a second apart. */
async function kubectlRetried(args: string[], tries = 15) {
  let last;
  for (let i = 0; i < tries; i += 1) {
    last = await kubectl(args);
    if (last.code === 0) return last;
    await sleep(1_000);
  }
  return last!;
}

function startWatch(): { exited: Promise<number | null>; output: () => string; stop(): void } {
  const child = spawn(
    IP,
    ['netns', 'exec', net.runnerNs, 'kubectl', 'get', 'configmaps', '-w', '-o', 'name'],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: job.root,
        RUNNER_TEMP: job.runnerTemp,
        ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${TOKEN_PORT}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
        ...job.exportedEnv,
      },
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { exited, output: () => out, stop: () => void child.kill('SIGKILL') };
}

/** One TCP connect from `ns` (undefined: the host): 'open', or why not. */
function probe(ns: string | undefined, host: string, port: number): string {
  const args = [TOOLS, 'probe', host, String(port)];
  if (ns) return net.run(ns, process.execPath, args).stdout.trim();
  return spawnSync(process.execPath, args, { encoding: 'utf8' }).stdout.trim();
}

/**
 * One more broker replica in edge mode: edge-only (publicListeners: false, no port but the internal
 * one), or with its public listeners too (its own gateway port: they share this host).
 */
async function startReplica(edgeOnly: boolean): Promise<RunningBroker> {
  let config: Record<string, unknown> = { ...brokerConfig, publicListeners: false };
  let port: number | undefined;
  if (!edgeOnly) {
    port = await freePort();
    const gateway = { ...(brokerConfig.gateway as object), listen: { host: '127.0.0.1', port } };
    config = { ...brokerConfig, gateway, publicListeners: true };
  }
  const broker = await env.startBroker({ tls: brokerTls, config });
  if (port) gatewayPorts.set(broker, port);
  brokers.push(broker);
  return broker;
}

/** Every JWT in the files under `d` (the runner's: the grant tokens the action cached). */
function jwtsUnder(d: string): string[] {
  const found = new Set<string>();
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) for (const t of jwtsUnder(p)) found.add(t);
    else for (const m of readFileSync(p, 'latin1').matchAll(JWT)) found.add(m[0]);
  }
  return [...found];
}

/** The gateway port a replica with public listeners was started with. */
const gatewayPortOf = (b: RunningBroker): number => gatewayPorts.get(b)!;
const gatewayPorts = new Map<RunningBroker, number>();

/** A replica's log lines (JSON on stderr). */
const logLines = (b: RunningBroker): Record<string, unknown>[] =>
  b.stderr.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

const gatewayLines = (b: RunningBroker) => b.audit().filter((l) => l.action === 'gateway');

beforeAll(async () => {
  await ensureActionBuilt();
  entry = await ensureBrokerBuilt();
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-edge-'));
  // The runner's names resolve to its own loopback, where the recording tap relays to the edge.
  net = createEdgeNetwork(dir, [BROKER_NAME, GATEWAY_NAME], '127.0.0.1');
  runnerCa = makeCa(dir, 'runner-facing');
  const serving = issue(dir, runnerCa, 'broker-serving', {
    server: [`DNS:${BROKER_NAME}`, `DNS:${GATEWAY_NAME}`, 'IP:127.0.0.1'],
  });
  brokerTls = { certFile: serving.certFile, keyFile: serving.keyFile, ca: runnerCa.cert };
  const edgeCa = makeCa(dir, 'edge');
  const edgeTunnel = issue(dir, edgeCa, 'edge-tunnel', { server: ['DNS:edge-tunnel.test'] });
  const clientCa = makeCa(dir, 'broker-client');
  const client = issue(dir, clientCa, 'broker-client', { client: true });
  edgeConfig = join(dir, 'edge.yaml');
  writeFileSync(
    edgeConfig,
    dump({
      listen: { host: net.edgePublicAddress, port: PUBLIC_PORT },
      routes: [
        { serverName: BROKER_NAME, target: 'broker' },
        { serverName: GATEWAY_NAME, target: 'gateway' },
      ],
      tunnel: {
        listen: { host: net.edgeTunnelAddress, port: TUNNEL_PORT },
        tls: { certFile: edgeTunnel.certFile, keyFile: edgeTunnel.keyFile },
        clientCaFile: clientCa.certFile,
        clientKeySha256: [publicKeyPin(new X509Certificate(client.cert).raw)],
      },
    }),
  );
  env = await startBrokerEnv({
    namespaces: ['edge'],
    policy: {
      rules: [
        {
          roles: ['deployer'],
          maxTtlSeconds: 60,
          maxSessionSeconds: 600,
          // Only the runner's own address: proves the broker and its gateway see it through the edge.
          sourceRanges: [`${net.runnerAddress}/32`],
        },
      ],
    },
  });
  brokerConfig = {
    gateway: {
      url: `https://${GATEWAY_NAME}:${PUBLIC_PORT}`,
      caFile: runnerCa.certFile,
    },
    edge: {
      addresses: [`${net.edgeTunnelAddress}:${TUNNEL_PORT}`],
      serverName: 'edge-tunnel.test',
      caFile: edgeCa.certFile,
      clientTls: { certFile: client.certFile, keyFile: client.keyFile },
      backoff: BACKOFF,
    },
  };
  edge = await startEdge();
  await startReplica(true);
  await tunnelsUp(1);
  capture = join(dir, 'edge-capture.bin');
  writeFileSync(capture, '');
  tap = net.start(net.runnerNs, process.execPath, [
    TOOLS,
    'tap',
    String(PUBLIC_PORT),
    net.edgePublicAddress,
    String(PUBLIC_PORT),
    capture,
  ]);
  await tap.line((l) => l === 'tap ready');
  // A runner mints each ID token on request; these are minted ahead (the runner namespace cannot
  // reach the issuer), so they live as long as the suite may run on a busy machine.
  for (let i = 0; i < 10; i += 1) idTokens.push(await env.issuer.sign({}, { expiresIn: 1_800 }));
  tokenServer = net.start(net.runnerNs, process.execPath, [TOOLS, 'token-server', String(TOKEN_PORT)], {
    TOKENS: JSON.stringify(idTokens),
  });
  await tokenServer.line((l) => l === 'token server ready');
  job = env.newJob({
    node: net.runnerNode,
    idToken: { url: `http://127.0.0.1:${TOKEN_PORT}/token?api-version=2.0`, token: 'runner-request-token' },
  });
}, 240_000);

afterAll(async () => {
  await Promise.all([edge, tap, tokenServer].map((p) => p?.stop('SIGKILL')));
  await env?.cleanup();
  job?.cleanup();
  const left = net?.remove() ?? [];
  if (dir) rmSync(dir, { recursive: true, force: true });
  // Nothing of the test's network may outlive it.
  expect(left).toEqual([]);
});

describe('edge mode across a network boundary', () => {
  test('the runner reaches only the edge; the edge reaches neither the API server nor a broker port', () => {
    const api = new URL(clusterEndpoint().server);
    const apiPort = Number(api.port || 443);
    const internalPort = Number(new URL(brokers[0]!.internalUrl).port);
    const ports = [apiPort, internalPort];
    // The probe can see an open port: on the host these are listening.
    for (const port of ports) expect(probe(undefined, '127.0.0.1', port)).toBe('open');
    for (const port of ports) {
      for (const host of [api.hostname, net.hostAddress])
        expect(probe(net.runnerNs, host, port)).not.toBe('open');
      expect(probe(net.edgeNs, net.hostAddress, port)).not.toBe('open');
    }
    expect(probe(net.runnerNs, net.edgeTunnelAddress, TUNNEL_PORT)).not.toBe('open');
    expect(probe(net.runnerNs, net.edgePublicAddress, PUBLIC_PORT)).toBe('open');
  }, 120_000);

  test('publicListeners: false: the broker listens on its internal port alone, its exchange and gateway ports are refused', async () => {
    const edgeOnly = brokers[0]!;
    const internalPort = Number(new URL(edgeOnly.internalUrl).port);
    expect(listeningPorts(edgeOnly.process.pid!)).toEqual([internalPort]);
    // The ports a broker with its listeners on would take (the harness reserved them): refused.
    expect(probe(undefined, '127.0.0.1', Number(new URL(edgeOnly.url).port))).toBe('ECONNREFUSED');
    const started = logLines(edgeOnly);
    expect(started.find((l) => l.msg === 'broker listening')).toMatchObject({
      url: null,
      publicListeners: false,
    });
    expect(started.find((l) => l.msg === 'gateway listening')).toMatchObject({ url: null });
    // The same reading sees every port of a replica whose listeners are on: it would see a leak.
    const open = await startReplica(false);
    try {
      expect(listeningPorts(open.process.pid!)).toEqual(
        [open.url, open.internalUrl, `https://127.0.0.1:${gatewayPortOf(open)}`]
          .map((u) => Number(new URL(u).port))
          .sort((a, b) => a - b),
      );
    } finally {
      brokers.splice(brokers.indexOf(open), 1);
      await open.stop();
    }
  }, 120_000);

  test('main, kubectl through the gateway (get, apply, a watch) work from the runner namespace', async () => {
    const main = await job.main({
      'broker-url': `https://${BROKER_NAME}:${PUBLIC_PORT}`,
      'broker-ca': runnerCa.cert.toString(),
      namespace: env.ns,
      role: 'deployer',
      ttl: '60',
      credentials: 'exec',
    });
    expect(main.errors).toEqual([]);
    expect(main.exitCode).toBe(0);
    const kubeconfig = JSON.parse(readFileSync(main.outputs.kubeconfig!, 'utf8')) as {
      clusters: { cluster: { server: string } }[];
    };
    expect(kubeconfig.clusters[0]!.cluster.server).toBe(`https://${GATEWAY_NAME}:${PUBLIC_PORT}`);
    const exchange = await brokers[0]!.auditLine((l) => l.action === 'exchange');
    expect(exchange.clientAddress).toBe(net.runnerAddress);

    const watch = startWatch();
    try {
      await kubectlOk(['create', 'configmap', 'via-edge', '--from-literal=a=b']);
      const manifest = join(job.root, 'cm.yaml');
      writeFileSync(
        manifest,
        dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied' }, data: { k: 'v' } }),
      );
      const applied = await kubectl(['apply', '-f', manifest]);
      expect(applied.stderr).toBe('');
      expect((await kubectl(['get', 'configmaps', '-o', 'name'])).stdout).toContain('configmap/applied');
      for (let i = 0; i < 50 && !watch.output().includes('configmap/applied'); i += 1) await sleep(100);
      expect(watch.output()).toContain('configmap/via-edge');
      expect(watch.output()).toContain('configmap/applied');
    } finally {
      watch.stop();
    }
    // Every call was forwarded under a rule whose sourceRanges is the runner's address alone: the
    // gateway saw that address through the edge (the same token from this host: the next tests).
    const lines = gatewayLines(brokers[0]!);
    expect(lines.length).toBeGreaterThan(2);
    // (the API server's own answers stay: 404 for apply's first GET, 403 where RBAC says so)
    expect(lines.filter((l) => l.status === 401 || JSON.stringify(l).includes('source_not_allowed'))).toEqual(
      [],
    );
    expect(lines.filter((l) => (l.status as number) < 300).length).toBeGreaterThan(2);
    grantTokens.push(...jwtsUnder(job.root).filter((t) => !idTokens.includes(t)));
    expect(kubectlAdmin(['get', 'configmap', 'applied', '-n', env.ns, '-o', 'name'])).toContain('applied');
  }, 120_000);

  test('the edge restarted mid-job: the tunnel comes back within the bounded backoff, kubectl retries succeed, watches resume', async () => {
    const watch = startWatch();
    await sleep(1_000);
    const brokerLinesBefore = brokers[0]!.stderr.length;
    await edge.stop('SIGKILL');
    const down = await kubectl(['get', 'configmaps', '-o', 'name', '--request-timeout=5s']);
    expect(down.code).not.toBe(0); // no way in while the edge is down
    await sleep(5_000); // a few redials against a closed port
    edge = await startEdge();
    await tunnelsUp(1);
    const get = await kubectlRetried(['get', 'configmaps', '-o', 'name']);
    expect(get.stdout).toContain('configmap/via-edge');
    const again = startWatch();
    try {
      await kubectlOk(['create', 'configmap', 'after-restart', '--from-literal=a=b']);
      for (let i = 0; i < 50 && !again.output().includes('after-restart'); i += 1) await sleep(100);
      expect(again.output()).toContain('configmap/after-restart');
      // The watch open across the restart lost its connection: kubectl either ended it or
      // re-established it by itself; either way it never hangs on a dead stream.
      const exited = await Promise.race([watch.exited.then(() => true), sleep(3_000).then(() => false)]);
      console.log(
        `the watch open across the restart: ${exited ? 'ended' : 're-established by kubectl'}; output:\n${watch.output()}`,
      );
      if (!exited) expect(watch.output()).toContain('configmap/after-restart');
    } finally {
      again.stop();
      watch.stop();
    }
    const retries = brokers[0]!.stderr
      .slice(brokerLinesBefore)
      .filter((l) => l.includes('edge tunnel'))
      .map((l) => JSON.parse(l) as { retryInMs?: number })
      .filter((l) => l.retryInMs !== undefined)
      .map((l) => l.retryInMs!);
    console.log(`edge down ~5 s: ${retries.length} redials, waits ${retries.join(', ')} ms`);
    expect(retries.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...retries)).toBeLessThanOrEqual(BACKOFF.maxMs);
  }, 240_000);

  test('one of two broker replicas killed: streams continue on the other', async () => {
    const since = edge.lines.length;
    // This one keeps its public listeners: edge-only and listening replicas share one edge.
    const second = await startReplica(false);
    await tunnelsUp(2, since);
    // The job's token straight to its gateway from this host is refused: the rule's sourceRanges
    // is the runner's address, which only the edge's streams carry.
    const fromHost = await brokerRequest(
      `https://127.0.0.1:${gatewayPortOf(second)}`,
      'GET',
      `/api/v1/namespaces/${env.ns}/configmaps`,
      { token: grantTokens[0] },
      runnerCa.cert,
    );
    expect(fromHost.status).toBe(403);
    expect(JSON.stringify(fromHost.body)).toContain("this client's address");
    for (let i = 0; i < 6; i += 1) await kubectlOk(['get', 'configmaps', '-o', 'name']);
    // Both replicas served runners' connections.
    expect(gatewayLines(brokers[0]!).length).toBeGreaterThan(0);
    expect(gatewayLines(second).length).toBeGreaterThan(0);
    const secondBefore = gatewayLines(second).length;
    await brokers[0]!.kill();
    for (let i = 0; i < 6; i += 1) await kubectlOk(['get', 'configmaps', '-o', 'name']);
    expect(gatewayLines(second).length).toBeGreaterThanOrEqual(secondBefore + 6);
  }, 180_000);

  test('renewal through the edge (the exec plugin), then post revokes through it', async () => {
    const live = brokers[1]!;
    const renewAfter = Date.now() + 42_000; // two thirds of the 60 s grant, and a margin
    while (Date.now() < renewAfter) {
      await kubectlOk(['get', 'configmaps', '-o', 'name']);
      await sleep(5_000);
    }
    await kubectlOk(['get', 'configmaps', '-o', 'name']);
    const renewal = await live.auditLine((l) => l.action === 'renewal');
    expect(renewal.clientAddress).toBe(net.runnerAddress);
    const post = await job.post();
    expect(post.errors).toEqual([]);
    await live.auditLine((l) => l.action === 'revocation');
    const after = await kubectl(['get', 'configmaps', '-o', 'name']);
    expect(after.code).not.toBe(0);
  }, 240_000);

  test("the edge's logs and the bytes it relayed hold no JWT, grant token or request path", () => {
    const secrets = [...idTokens, ...grantTokens];
    expect(grantTokens.length).toBeGreaterThan(0);
    const bytes = readFileSync(capture).toString('latin1');
    expect(bytes.length).toBeGreaterThan(10_000);
    const logs = [...edgeOutput, ...edge.lines].join('\n');
    expect(logs).toContain('connection relayed');
    for (const haystack of [bytes, logs]) {
      for (const secret of secrets) expect(haystack.includes(secret)).toBe(false);
      expect(haystack.match(JWT)).toBeNull();
      for (const path of ['/v1/exchange', '/api/v1/namespaces', env.ns, 'configmaps', 'Bearer'])
        expect(haystack).not.toContain(path);
    }
    // What it may read: the server names in the clear ClientHellos.
    expect(bytes).toContain(GATEWAY_NAME);
  });
});
