// The broker as users run it, on the test cluster's real node: the image `npm run image` builds,
// imported into the node's containerd, installed by `helm install` of the chart (pullPolicy Never),
// its TLS from a Secret, its config and policy from the chart's ConfigMaps, its API access from the
// pod's projected ServiceAccount token. The OIDC issuer runs in this process, listening on the host
// end of the node's link, over https (the broker takes http only from loopback). This process reaches
// the broker through its NodePort Service on the node's address (kube-proxy). Not shown yet: an
// exchange from the pods (they answer 503 jwks_unavailable: their fetch of the issuer's keys fails).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import {
  adminKubeconfigPath,
  clusterEndpoint,
  freshNamespace,
  kubectlAdmin,
  readAudit,
  tryKubectlAdmin,
  waitFor,
} from '../../../test/support/cluster.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { ensureHelm, helm } from '../../../test/support/helm.js';
import { nodeInfo } from '../../../test/support/node.js';
import { buildImage, type BuildReport } from '../../../test/support/oci-image.js';
import { startOidcIssuer, type OidcIssuer } from '../../../test/support/oidc-issuer.js';
import { policyYaml } from '../../../test/support/policy.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import { ensureActionBuilt } from '../../../test/support/runner.js';
import { selfSignedCert } from '../../../test/support/tls.js';

const chart = join(repoRoot, 'deploy/chart/k8s-ephemeral-access');
const SELECTOR = 'app.kubernetes.io/name=k8s-ephemeral-access-broker';
const RELEASE = 'k8s-ea-pods';

let dir: string;
let image: BuildReport;
let issuer: OidcIssuer;
let brokerNs: { name: string; remove: () => Promise<void> };
let jobNs: { name: string; remove: () => Promise<void> };
let ca: Buffer;
let brokerUrl = '';
let installed = false;
let issuerCaFile = '';

const inBroker = (args: string[]) => kubectlAdmin(['-n', brokerNs.name, ...args]);

interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status: { containerStatuses: { restartCount: number; ready: boolean }[] };
}
const brokerPods = (): Pod[] =>
  (JSON.parse(inBroker(['get', 'pods', '-l', SELECTOR, '-o', 'json'])) as { items: Pod[] }).items.filter(
    (p) => !p.metadata.deletionTimestamp,
  );

/** The chart's values for this cluster: the local image, the local issuer, the job namespace's policy. */
function values(): Record<string, unknown> {
  const [repository, tag] = image.image.split(':') as [string, string];
  const api = clusterEndpoint();
  return {
    image: { repository, tag, pullPolicy: 'Never' },
    replicas: 2,
    issuers: [issuer.issuer],
    // Runners (this process) reach the API server at its own address, not the in-cluster Service's.
    clusterServer: api.server,
    clusterCa: Buffer.from(api.caData, 'base64').toString('utf8'),
    policy: policyYaml({ namespaces: [jobNs.name], rules: [{ roles: ['deployer', 'viewer'] }] }),
    service: { type: 'NodePort' },
    // The global set-up installs the guard and the example roles cluster-wide; the chart must not own them.
    admissionGuard: { enabled: false },
    exampleJobRoles: false,
    // The node's bridge CNI enforces no NetworkPolicy: rendering one here would prove nothing.
    networkPolicy: { enabled: false },
  };
}

/** Builds the image once for this file and imports it into the node's containerd. */
function buildAndImport(): void {
  image = buildImage('amd64', join(dir, 'image'));
  console.log(`broker image ${image.image} ${image.digest} built in ${image.seconds} s`);
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/cluster.mjs'), 'import', image.out], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`import failed: ${r.stderr}`);
}

function installChart(): void {
  const tls = selfSignedCert(dir, nodeInfo().nodeIP);
  ca = tls.ca;
  // The Secret carries the issuer's CA too (ca.crt), for NODE_EXTRA_CA_CERTS below.
  inBroker([
    'create',
    'secret',
    'generic',
    'k8s-ea-broker-tls',
    '--type=kubernetes.io/tls',
    `--from-file=tls.crt=${tls.certFile}`,
    `--from-file=tls.key=${tls.keyFile}`,
    `--from-file=ca.crt=${issuerCaFile}`,
  ]);
  const valuesFile = join(dir, 'values.yaml');
  writeFileSync(valuesFile, dump(values()));
  const r = helm([
    'install',
    RELEASE,
    chart,
    '-n',
    brokerNs.name,
    '-f',
    valuesFile,
    '--kubeconfig',
    adminKubeconfigPath(),
  ]);
  if (r.status !== 0) throw new Error(`helm install failed: ${r.stderr}`);
  installed = true;
  // The chart has no setting to trust a private issuer's CA: the one deviation from a plain install.
  inBroker(['set', 'env', 'deployment/k8s-ea-broker', 'NODE_EXTRA_CA_CERTS=/etc/k8s-ea-tls/ca.crt']);
  const nodePort = inBroker([
    'get',
    'svc',
    'k8s-ea-broker',
    '-o',
    'jsonpath={.spec.ports[?(@.name=="https")].nodePort}',
  ]);
  brokerUrl = `https://${nodeInfo().nodeIP}:${nodePort}`;
}

/** The lines of every broker pod's log (JSON lines), by pod name. */
function brokerLogs(): Record<string, Record<string, unknown>[]> {
  const logs: Record<string, Record<string, unknown>[]> = {};
  for (const p of brokerPods()) {
    const text = inBroker(['logs', p.metadata.name, '-c', 'broker']);
    logs[p.metadata.name] = text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  return logs;
}

/** Why pods are not Ready: their states, events and last log lines (for a failure message). */
function podDiagnostics(): string {
  const out = [tryKubectlAdmin(['-n', brokerNs.name, 'get', 'pods', '-o', 'wide']).stdout];
  out.push(tryKubectlAdmin(['-n', brokerNs.name, 'get', 'events', '--sort-by=.lastTimestamp']).stdout);
  out.push(
    tryKubectlAdmin([
      '-n',
      brokerNs.name,
      'get',
      'pods',
      '-o',
      'jsonpath={.items[*].status.containerStatuses}',
    ]).stdout,
  );
  for (const p of brokerPods())
    for (const previous of ['--previous=false', '--previous=true'])
      out.push(
        tryKubectlAdmin(['-n', brokerNs.name, 'logs', p.metadata.name, previous, '--tail=10']).stdout +
          tryKubectlAdmin(['-n', brokerNs.name, 'logs', p.metadata.name, previous, '--tail=10']).stderr,
      );
  return out.join('\n').slice(-4000);
}

// The node is opt-in (K8S_EA_NODE=1, scripts/cluster.mjs), as in __tests__/cluster/node.cluster.test.ts.
const describeNode = process.env.K8S_EA_NODE === '1' ? describe : describe.skip;
if (process.env.K8S_EA_NODE !== '1')
  console.log('broker-pods: skipped, the test cluster has no node (set K8S_EA_NODE=1)');

describeNode('the broker installed by Helm on the real node', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ea-pods-'));
    await ensureActionBuilt();
    ensureHelm();
    buildAndImport();
    const issuerTls = selfSignedCert(mkdtempSync(join(dir, 'issuer-')), nodeInfo().hostIP);
    issuerCaFile = issuerTls.certFile;
    issuer = await startOidcIssuer({
      host: nodeInfo().hostIP,
      tls: { key: readFileSync(issuerTls.keyFile), cert: issuerTls.ca },
    });
    brokerNs = await freshNamespace('pods-broker');
    jobNs = await freshNamespace('pods-job');
    installChart();
  }, 300_000);

  afterAll(async () => {
    if (installed)
      helm(['uninstall', RELEASE, '-n', brokerNs.name, '--wait', '--kubeconfig', adminKubeconfigPath()]);
    await jobNs?.remove();
    await brokerNs?.remove();
    await issuer?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test('the pods become Ready through their probes, with the policy ConfigMap and the TLS Secret, and use their projected token', async () => {
    const started = Date.now();
    // The env change above rolls the Deployment once: its first pods cannot verify the issuer.
    const rollout = tryKubectlAdmin([
      '-n',
      brokerNs.name,
      'rollout',
      'status',
      'deployment/k8s-ea-broker',
      '--timeout=150s',
    ]);
    if (rollout.status !== 0) throw new Error(`rollout: ${rollout.stderr}\n${podDiagnostics()}`);
    // Ready is the readiness probe's verdict (https /readyz); terminating pods of the first rollout aside.
    const ready = () => {
      const pods = brokerPods();
      return pods.length === 2 && pods.every((p) => p.status.containerStatuses?.[0]?.ready)
        ? pods.map((p) => p.metadata.name)
        : undefined;
    };
    const names = await waitFor('both broker pods Ready', ready, 120_000, 500).catch((err: Error) => {
      throw new Error(`${err.message}\n${podDiagnostics()}`);
    });
    console.log(`both broker pods Ready ${Date.now() - started} ms after helm install returned`);
    expect(names).toHaveLength(2);
    const logs = brokerLogs();
    for (const name of names) {
      const listening = logs[name]!.find((l) => l.msg === 'broker listening');
      // The policy from the policy ConfigMap: its one namespace.
      expect(listening).toMatchObject({ namespaces: [jobNs.name] });
    }
    // TLS from the Secret: its certificate (and nothing else) verifies the answer through the NodePort.
    const health = await brokerRequest(brokerUrl, 'GET', '/healthz', {}, ca);
    expect(health.status).toBe(200);
    await expect(
      brokerRequest(brokerUrl, 'GET', '/healthz', {}, readFileSync(issuerCaFile)),
    ).rejects.toThrow();
    const sa = `system:serviceaccount:${brokerNs.name}:k8s-ea-broker`;
    const byBroker = readAudit().filter((e) => e.user.username === sa);
    expect(byBroker.length).toBeGreaterThan(0);
    // A bound (projected) token carries the pod it was issued for; the test's kubeconfig never does.
    const pods = new Set(byBroker.map((e) => e.user.extra?.['authentication.kubernetes.io/pod-name']?.[0]));
    // Every request of the ServiceAccount came from a pod's token; these pods' among them.
    expect(pods.has(undefined)).toBe(false);
    for (const name of names) expect(pods.has(name)).toBe(true);
  }, 300_000);
});
