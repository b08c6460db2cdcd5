// The test cluster's node: where it is, its local images, and pods from the test image.
import { describe } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname, join } from 'node:path';
import { adminKubeconfigPath, kubectl, kubectlAdmin, waitFor } from './cluster.js';

export interface NodeInfo {
  name: string;
  /** The node's pinned network namespace (`nsenter --net=<netns>` runs a command inside it). */
  netns: string;
  /** The node's address: reachable from this machine (NodePorts, the kubelet), not beyond it. */
  nodeIP: string;
  /** This machine's end of the node's link: its address and interface. */
  hostIP: string;
  link: string;
  /** The node's cgroup (the same path in every hierarchy): its processes and pods are below it. */
  cgroup: string;
  /** The node's sockets (containerd's, the shims'). */
  runDir: string;
  /** The CNI network's name (libcni's cache files carry it). */
  cniNetwork: string;
  containerdSocket: string;
  ctr: string;
}

/** The node of a cluster, by its state directory (by default the one of the cluster the tests use). */
export function nodeInfo(stateDir = dirname(adminKubeconfigPath())): NodeInfo {
  return JSON.parse(readFileSync(join(stateDir, 'node', 'info.json'), 'utf8')) as NodeInfo;
}

/** The node's local images (test/cluster/images/images.json, their one source), by name. */
const NODE_IMAGES = JSON.parse(
  readFileSync(new URL('../cluster/images/images.json', import.meta.url), 'utf8'),
) as Record<string, { ref: string }>;

/** The test workload image (test/cluster/images/testapp): serves on 8080 what a test asks of its pod. */
export const TEST_IMAGE = NODE_IMAGES.testapp!.ref;

/** A container of the test image, never pulled (it is imported into the node at cluster:up). */
export function testContainer(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'app',
    image: TEST_IMAGE,
    imagePullPolicy: 'Never',
    ports: [{ containerPort: 8080 }],
    readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
    securityContext: {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...extra,
  };
}

// Run by `nsenter --net=<netns>`: opens a listening socket there and hands it to the parent over IPC.
const LISTEN_IN_NETNS = `
const s = require('node:net').createServer();
s.listen(0, process.argv[1], () => process.send('listening', s, () => { s.close(); process.disconnect(); }));
`;

/**
 * A listening TCP socket inside the node's network namespace, on the node's address (a free port),
 * for a server of this process. Why: pods cannot open connections off the node (its FORWARD chain
 * drops new ones from the pod range to the link, and this machine has no route back to that range),
 * but the node's own address is local to them; this process reaches that address over the link. So
 * a server here (the test OIDC issuer) is reachable from both and no traffic leaves the namespace.
 * A socket keeps the namespace it was created in: a short child creates it there and passes it over.
 */
export async function listenInNode(node: NodeInfo): Promise<Server> {
  const child = spawn(
    'nsenter',
    [`--net=${node.netns}`, process.execPath, '-e', LISTEN_IN_NETNS, node.nodeIP],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<Server>((resolveListen, reject) => {
    child.on('message', (_m, handle) => resolveListen(handle as Server));
    child.on('error', reject);
    child.on('exit', (code) =>
      reject(new Error(`listening in the node's netns failed (${code}): ${stderr}`)),
    );
  });
}

const cgroupHierarchies = (): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' - '))
    .filter(([, fs]) => /^cgroup2? /.test(fs ?? ''))
    .map(([head]) => head!.split(' ')[4]!);

/** Every process in the node's cgroup (containerd, shims, containers, kubelet, kube-proxy). */
export function nodeProcesses(node: NodeInfo): number[] {
  const pids: number[] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name === 'cgroup.procs')
        pids.push(...readFileSync(join(dir, e.name), 'utf8').split('\n').filter(Boolean).map(Number));
    }
  };
  walk(join(cgroupHierarchies()[0]!, node.cgroup));
  return pids;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * What a stopped node left on this machine, by kind (empty when nothing): mounts under its state or
 * socket directories, its link, its cgroups, the processes it had, its files, libcni cache entries.
 */
export function nodeLeftovers(node: NodeInfo, stateDir: string, pids: number[]): string[] {
  const left: string[] = [];
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => [stateDir, node.runDir].some((d) => mp === d || mp.startsWith(`${d}/`)));
  if (mounts.length > 0) left.push(`mounts: ${mounts.join(', ')}`);
  if (existsSync(`/sys/class/net/${node.link}`)) left.push(`link ${node.link}`);
  const cgroups = cgroupHierarchies()
    .map((h) => join(h, node.cgroup))
    .filter((d) => existsSync(d));
  if (cgroups.length > 0) left.push(`cgroups: ${cgroups.join(', ')}`);
  const living = pids.filter(alive);
  if (living.length > 0) left.push(`processes: ${living.join(', ')}`);
  for (const d of [node.runDir, join(stateDir, 'node')]) if (existsSync(d)) left.push(`directory ${d}`);
  const results = '/var/lib/cni/results';
  if (existsSync(results)) {
    const cached = readdirSync(results).filter((f) => f.startsWith(`${node.cniNetwork}-`));
    if (cached.length > 0) left.push(`libcni cache: ${cached.join(', ')}`);
  }
  return left;
}

/**
 * Polls until every pod matching selector in namespace (at least one) is Ready; returns their names.
 * Polling, not `kubectl wait`: kubectl's request timeout would cut a long watch short.
 */
export async function waitPodsReady(
  kubeconfig: string,
  namespace: string,
  selector: string,
  timeoutMs = 120_000,
): Promise<string[]> {
  return waitFor(
    `pods ${selector} Ready`,
    () => {
      const r = kubectl(kubeconfig, ['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'json']);
      if (r.status !== 0) return undefined;
      const pods = (JSON.parse(r.stdout) as { items: PodStatus[] }).items;
      const ready = pods.filter((p) =>
        p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      return pods.length > 0 && ready.length === pods.length ? pods.map((p) => p.metadata.name) : undefined;
    },
    timeoutMs,
    500,
  );
}

/**
 * The pod addresses kube-proxy's rules in the node's namespace send each port of a Service to, by
 * port name ('' for an unnamed port): its KUBE-SVC chains' rules, whose comments name the endpoint
 * ("<ns>/<service>:<port> -> <ip>:<port>", or "<ns>/<service> -> ..." for an unnamed port).
 */
export function routedEndpoints(ns: string, service: string): Map<string, Set<string>> {
  const r = spawnSync('nsenter', [`--net=${nodeInfo().netns}`, 'iptables-save', '-t', 'nat'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`iptables-save in the node failed: ${r.stderr}`);
  const byPort = new Map<string, Set<string>>();
  const name = `${ns}/${service}`;
  for (const line of r.stdout.split('\n')) {
    const m = /^-A KUBE-SV[CL]-\S+ .*--comment "?([^" ]+) -> ([\d.]+):\d+"?/.exec(line);
    if (!m) continue;
    const [target, ip] = [m[1]!, m[2]!];
    if (target !== name && !target.startsWith(`${name}:`)) continue;
    const port = target.slice(name.length + 1);
    byPort.set(port, (byPort.get(port) ?? new Set()).add(ip));
  }
  return byPort;
}

/**
 * Until kube-proxy routes every port of a Service to exactly these pod addresses. Why: a pod is Ready
 * before kube-proxy has seen its endpoint (the EndpointSlice, then kube-proxy's next sync); until it
 * has, a NodePort refuses connections and a ClusterIP drops them, and an old pod in its preStop sleep
 * may still answer. A loaded machine makes that window seconds long. Logs how long it waited.
 */
export async function waitRoutedTo(ns: string, service: string, podIPs: string[]): Promise<void> {
  const want = JSON.stringify([...podIPs].sort());
  const spec = JSON.parse(kubectlAdmin(['-n', ns, 'get', 'svc', service, '-o', 'json'])) as {
    spec: { ports: { name?: string }[] };
  };
  const ports = spec.spec.ports.map((p) => p.name ?? '');
  const describe = (routes: Map<string, Set<string>>) =>
    JSON.stringify(Object.fromEntries([...routes].map(([p, ips]) => [p, [...ips].sort()])));
  const started = Date.now();
  let first: string | undefined;
  await waitFor(
    `kube-proxy to route ${ns}/${service} to ${want} only`,
    () => {
      const routes = routedEndpoints(ns, service);
      const done = ports.every((p) => JSON.stringify([...(routes.get(p) ?? [])].sort()) === want);
      first ??= done ? '' : describe(routes);
      return done ? true : undefined;
    },
    60_000,
    250,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; routes: ${describe(routedEndpoints(ns, service))}`);
  });
  if (first)
    console.log(
      `kube-proxy routed ${ns}/${service} as ${first} when asked; ${Date.now() - started} ms later only to ${want}`,
    );
}

interface PodStatus {
  metadata: { name: string };
  status: { conditions?: { type: string; status: string }[] };
}

/**
 * Whether the cluster the tests use has a node, from its state (the node's info file): `cluster:up`
 * starts one unless K8S_EA_NODE=0.
 */
export function clusterHasNode(stateDir = dirname(adminKubeconfigPath())): boolean {
  return existsSync(join(stateDir, 'node', 'info.json'));
}

/**
 * describe() for tests that need the node; on a cluster without one, describe.skip() and a line that
 * says why (a skipped suite is otherwise silent in jest's summary).
 */
export function describeOnNode(title: string, fn: () => void): void {
  if (clusterHasNode()) {
    describe(title, fn);
    return;
  }
  // To stderr, not console.log: jest shows no console output of a file whose tests all skipped.
  process.stderr.write(
    `${title}: skipped, the test cluster has no node (it was started with K8S_EA_NODE=0; npm run cluster:down, then npm test, starts one)\n`,
  );
  describe.skip(title, fn);
}
