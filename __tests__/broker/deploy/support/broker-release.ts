// The broker as a cluster admin runs it, on the test cluster's node: the image `npm run image` builds,
// imported into the node's containerd, a local OIDC issuer the pods reach (inside the node's network
// namespace), the chart's values for this cluster, and what a test reads back (pods, logs, why not Ready).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import {
  adminKubeconfigPath,
  clusterEndpoint,
  kubectlAdmin,
  tryKubectlAdmin,
  waitFor,
} from '../../../../test/support/cluster.js';
import { helm } from '../../../../test/support/helm.js';
import { listenInNode, nodeInfo } from '../../../../test/support/node.js';
import { buildImage, type BuildReport } from '../../../../test/support/oci-image.js';
import { startOidcIssuer, type OidcIssuer } from '../../../../test/support/oidc-issuer.js';
import { repoRoot } from '../../../../test/support/repo-root.js';
import { selfSignedCert } from '../../../../test/support/tls.js';

export const CHART = join(repoRoot, 'deploy/chart/k8s-ephemeral-access');
export const SELECTOR = 'app.kubernetes.io/name=k8s-ephemeral-access-broker';

/** Builds the broker image once and imports it into the node's containerd (never pulled). */
export function buildAndImport(dir: string): BuildReport {
  const image = buildImage('amd64', join(dir, 'image'));
  console.log(`broker image ${image.image} ${image.digest} built in ${image.seconds} s`);
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/cluster.mjs'), 'import', image.out], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`import failed: ${r.stderr}`);
  return image;
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

/** Waits for the Deployment's rollout, then for `count` Ready broker pods; returns them. */
export async function waitRolledOut(ns: string, count: number, timeoutMs = 150_000): Promise<Pod[]> {
  const rollout = tryKubectlAdmin([
    '-n',
    ns,
    'rollout',
    'status',
    'deployment/k8s-ea-broker',
    `--timeout=${Math.round(timeoutMs / 1000)}s`,
  ]);
  if (rollout.status !== 0) throw new Error(`rollout: ${rollout.stderr}\n${podDiagnostics(ns)}`);
  return waitFor(
    `${count} broker pods Ready`,
    () => {
      const pods = brokerPods(ns);
      return pods.length === count && pods.every((p) => p.status.containerStatuses?.[0]?.ready)
        ? pods
        : undefined;
    },
    timeoutMs,
    500,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${podDiagnostics(ns)}`);
  });
}
