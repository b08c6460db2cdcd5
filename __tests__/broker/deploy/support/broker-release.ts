// The broker as a cluster admin runs it, on the test cluster's node: the image `npm run image` builds,
// imported into the node's containerd, a local OIDC issuer the pods reach (inside the node's network
// namespace), the chart's values for this cluster, and what a test reads back (pods, logs, why not Ready).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dump } from 'js-yaml';
import {
  adminKubeconfigPath,
  clusterEndpoint,
  kubectlAdmin,
  tryKubectlAdmin,
  waitFor,
} from '../../../../test/support/cluster.js';
import { lockCluster } from '../../../../test/support/broker-install-lock.js';
import { helm } from '../../../../test/support/helm.js';
import { listenInNode, nodeInfo, waitRoutedTo } from '../../../../test/support/node.js';
import { brokerRequest } from '../../../../test/support/broker-request.js';
import { buildImage, type BuildReport } from '../../../../test/support/oci-image.js';
import { startOidcIssuer, type OidcIssuer } from '../../../../test/support/oidc-issuer.js';
import { repoRoot } from '../../../../test/support/repo-root.js';
import { selfSignedCert } from '../../../../test/support/tls.js';
import { EXCHANGE_PATH, GRANTS_PATH, type ExchangeResponse } from '../../../../src/shared/api.js';

export const CHART = join(repoRoot, 'deploy/chart/k8s-ephemeral-access');
export const SELECTOR = 'app.kubernetes.io/name=k8s-ephemeral-access-broker';
/** The broker's Service, in the chart and in deploy/. */
const SERVICE = 'k8s-ea-broker';

/**
 * The broker image `npm run image` builds, imported into the node's containerd (never pulled): built
 * once per test run (the run's id is the global set-up's K8S_EA_TEST_RUN) and shared by the files that
 * install the broker, which take turns on a lock while one builds. Its report and archive live beside
 * the cluster's state, so they go with the cluster.
 */
export async function localBrokerImage(): Promise<BuildReport> {
  const dir = join(dirname(adminKubeconfigPath()), 'broker-image');
  const reportFile = join(dir, `run-${process.env.K8S_EA_TEST_RUN ?? process.pid}.json`);
  const unlock = await lockCluster('broker-image', 'the broker image');
  try {
    if (existsSync(reportFile)) {
      const image = JSON.parse(readFileSync(reportFile, 'utf8')) as BuildReport;
      console.log(
        `broker image ${image.image} ${image.digest}: built earlier in this run, already on the node`,
      );
      return image;
    }
    rmSync(dir, { recursive: true, force: true });
    const image = buildImage('amd64', dir);
    console.log(`broker image ${image.image} ${image.digest} built in ${image.seconds} s`);
    const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/cluster.mjs'), 'import', image.out], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`import failed: ${r.stderr}`);
    writeFileSync(reportFile, JSON.stringify(image));
    return image;
  } finally {
    unlock();
  }
}

export interface PodIssuer {
  issuer: OidcIssuer;
  /** Its certificate (PEM file): the runner trusts it through NODE_EXTRA_CA_CERTS, the pods likewise. */
  caFile: string;
}

/**
 * The test OIDC issuer, over https on the node's address inside its network namespace: pods reach it
 * there (they cannot leave the node), this process over the node's link (listenInNode).
 */
export async function startPodIssuer(dir: string): Promise<PodIssuer> {
  const node = nodeInfo();
  const tls = selfSignedCert(mkdtempSync(join(dir, 'issuer-')), node.nodeIP);
  const issuer = await startOidcIssuer({
    listener: await listenInNode(node),
    tls: { key: readFileSync(tls.keyFile), cert: tls.ca },
  });
  return { issuer, caFile: tls.certFile };
}

/** Node ports no Service uses yet (the chart pins them, so gateway.url is known before installing). */
export function freeNodePorts(count: number): number[] {
  const used = new Set(
    kubectlAdmin(['get', 'svc', '-A', '-o', 'jsonpath={.items[*].spec.ports[*].nodePort}'])
      .split(/\s+/)
      .filter(Boolean)
      .map(Number),
  );
  const ports: number[] = [];
  while (ports.length < count) {
    const p = 30000 + Math.floor(Math.random() * 2768);
    if (!used.has(p) && !ports.includes(p)) ports.push(p);
  }
  return ports;
}

export interface ReleaseSpec {
  image: BuildReport;
  issuer: PodIssuer;
  policy: string;
  ports: { https: number; gateway: number };
  /** Gateway mode, with the broker's certificate (its CA is `gatewayCa`). */
  gatewayCa?: string;
  replicas?: number;
  config?: Record<string, unknown>;
}

/** The chart's values for this cluster: the local image and issuer, NodePorts on the node's address. */
export function releaseValues(s: ReleaseSpec): Record<string, unknown> {
  const [repository, tag] = s.image.image.split(':') as [string, string];
  const api = clusterEndpoint();
  return {
    image: { repository, tag, pullPolicy: 'Never' },
    replicas: s.replicas ?? 2,
    issuers: [s.issuer.issuer.issuer],
    issuerCa: readFileSync(s.issuer.caFile, 'utf8'),
    // Runners (this process) reach the API server at its own address, not the in-cluster Service's.
    clusterServer: api.server,
    clusterCa: Buffer.from(api.caData, 'base64').toString('utf8'),
    policy: s.policy,
    service: { type: 'NodePort', nodePorts: s.ports },
    // The global set-up installs the guard and the example roles cluster-wide; the chart must not own them.
    admissionGuard: { enabled: false },
    exampleJobRoles: false,
    // The node's bridge CNI enforces no NetworkPolicy: rendering one here would prove nothing.
    networkPolicy: { enabled: false },
    gateway: s.gatewayCa
      ? { enabled: true, url: `https://${nodeInfo().nodeIP}:${s.ports.gateway}`, ca: s.gatewayCa }
      : { enabled: false },
    config: s.config ?? {},
  };
}

/** helm install or upgrade of the chart with these values; throws with helm's stderr. */
export function helmApply(
  verb: 'install' | 'upgrade',
  release: string,
  namespace: string,
  values: Record<string, unknown>,
  dir: string,
): void {
  const file = join(dir, `values-${Date.now()}.yaml`);
  writeFileSync(file, dump(values));
  const r = helm([verb, release, CHART, '-n', namespace, '-f', file, '--kubeconfig', adminKubeconfigPath()]);
  if (r.status !== 0) throw new Error(`helm ${verb} failed: ${r.stderr}`);
}

export interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status: {
    podIP?: string;
    containerStatuses?: { restartCount: number; ready: boolean; containerID?: string }[];
  };
}

/** The broker pods that are not terminating. */
export function brokerPods(ns: string): Pod[] {
  const list = JSON.parse(kubectlAdmin(['-n', ns, 'get', 'pods', '-l', SELECTOR, '-o', 'json'])) as {
    items: Pod[];
  };
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

/** The JSON lines of a broker pod's log. */
export function podLog(ns: string, pod: string): Record<string, unknown>[] {
  return kubectlAdmin(['-n', ns, 'logs', pod, '-c', 'broker'])
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Why pods are not Ready: their states, events and last log lines (for a failure message). */
export function podDiagnostics(ns: string): string {
  const out = [tryKubectlAdmin(['-n', ns, 'get', 'pods', '-o', 'wide']).stdout];
  out.push(tryKubectlAdmin(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']).stdout);
  for (const p of brokerPods(ns))
    for (const previous of ['--previous=false', '--previous=true']) {
      const r = tryKubectlAdmin(['-n', ns, 'logs', p.metadata.name, previous, '--tail=10']);
      out.push(r.stdout + r.stderr);
    }
  return out.join('\n').slice(-4000);
}

interface DeploymentStatus {
  metadata: { generation: number };
  spec: { replicas: number };
  status: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
  };
}

/** Whether the broker's Deployment has rolled out its latest spec (what `kubectl rollout status` waits for). */
function rolledOut(ns: string): boolean {
  const d = JSON.parse(
    kubectlAdmin(['-n', ns, 'get', 'deployment', 'k8s-ea-broker', '-o', 'json']),
  ) as DeploymentStatus;
  const want = d.spec.replicas;
  return (
    (d.status.observedGeneration ?? 0) >= d.metadata.generation &&
    d.status.updatedReplicas === want &&
    d.status.replicas === want &&
    d.status.availableReplicas === want
  );
}

/**
 * Waits for the Deployment's rollout, then for `count` Ready broker pods, then for kube-proxy to
 * route the Service to them alone; returns them. Polled, not `kubectl rollout status`: a child run
 * synchronously for the whole rollout would stop this process's event loop, and with it the traffic a
 * test keeps going meanwhile (its kubectl children would run, but none would be started or read).
 */
export async function waitRolledOut(ns: string, count: number, timeoutMs = 150_000): Promise<Pod[]> {
  await waitFor('the Deployment rolled out', () => (rolledOut(ns) ? true : undefined), timeoutMs, 500).catch(
    (err: Error) => {
      throw new Error(`${err.message}\n${podDiagnostics(ns)}`);
    },
  );
  const pods = await waitFor(
    `${count} broker pods Ready`,
    () => {
      const ready = brokerPods(ns);
      return ready.length === count && ready.every((p) => p.status.containerStatuses?.[0]?.ready)
        ? ready
        : undefined;
    },
    timeoutMs,
    500,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${podDiagnostics(ns)}`);
  });
  await waitRoutedTo(
    ns,
    SERVICE,
    pods.map((p) => p.status.podIP ?? ''),
  );
  return pods;
}

export interface Exchanged {
  status: number;
  body: ExchangeResponse & { error?: string };
}

/** One exchange straight to a broker at `url` with a fresh token of a new run (so a new grant id). */
export async function exchangeAt(
  url: string,
  ca: Buffer,
  issuer: PodIssuer,
  request: { namespace: string; role: string; ttlSeconds?: number },
): Promise<Exchanged> {
  const jwt = await issuer.issuer.sign({
    run_id: String(Math.floor(Math.random() * 1e9)),
    check_run_id: String(Math.floor(Math.random() * 1e9)),
  });
  return brokerRequest<Exchanged['body']>(
    url,
    'POST',
    EXCHANGE_PATH,
    { token: jwt, body: { ttlSeconds: 600, ...request } },
    ca,
  );
}

/** Revokes a grant with its own token, as the post step does; the broker's status. */
export async function revokeAt(url: string, ca: Buffer, g: ExchangeResponse): Promise<number> {
  return (await brokerRequest(url, 'DELETE', `${GRANTS_PATH}/${g.grantId}`, { token: g.token }, ca)).status;
}

/** Until every broker pod in ns logged `msg` with these fields; the milliseconds since `since`. */
export async function everyBrokerPodLogged(
  ns: string,
  msg: string,
  fields: Record<string, unknown>,
  since: number,
): Promise<number> {
  const pods = brokerPods(ns).map((p) => p.metadata.name);
  await waitFor(
    `every broker pod to log ${msg}`,
    () =>
      pods.every((pod) =>
        podLog(ns, pod).some((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v)),
      )
        ? true
        : undefined,
    90_000,
    250,
  );
  return Date.now() - since;
}

/** Each broker pod's uid and its container's restart count: equal before and after means no restart. */
export const podRestarts = (ns: string): string[] =>
  brokerPods(ns)
    .map((p) => `${p.metadata.uid}:${p.status.containerStatuses?.[0]?.restartCount}`)
    .sort();
