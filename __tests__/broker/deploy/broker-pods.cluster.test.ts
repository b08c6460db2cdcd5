// The broker as users run it, on the test cluster's real node: the image `npm run image` builds,
// imported into the node's containerd, installed by `helm install` of the chart (pullPolicy Never),
// its TLS from a Secret, its config and policy from the chart's ConfigMaps, its API access from the
// pod's projected ServiceAccount token. The OIDC issuer runs in this process on a socket inside the
// node's network namespace (pods cannot leave the node; support/broker-release.ts). The runner (this
// process) reaches the broker through its NodePort Service on the node's address: kube-proxy's rules.
// One install serves the whole file; the tests run in order and each leaves the release usable.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import {
  adminKubeconfigPath,
  freshNamespace,
  kubectlAdmin,
  readAudit,
  tokenKubeconfig,
  kubectlStatus,
  waitFor,
} from '../../../test/support/cluster.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { ensureHelm, helm } from '../../../test/support/helm.js';
import { managedObjects } from '../../../test/support/managed-objects.js';
import { nodeInfo } from '../../../test/support/node.js';
import type { BuildReport } from '../../../test/support/oci-image.js';
import { policyYaml } from '../../../test/support/policy.js';
import { createJob, ensureActionBuilt, type RunnerJob } from '../../../test/support/runner.js';
import { selfSignedCert } from '../../../test/support/tls.js';
import {
  buildAndImport,
  freeNodePorts,
  helmApply,
  podLog,
  releaseValues,
  startPodIssuer,
  waitRolledOut,
  type PodIssuer,
  type ReleaseSpec,
} from './support/broker-release.js';

const RELEASE = 'k8s-ea-pods';

let dir: string;
let image: BuildReport;
let issuer: PodIssuer;
let brokerNs: { name: string; remove: () => Promise<void> };
let jobNs: { name: string; remove: () => Promise<void> };
let ca: Buffer;
let spec: ReleaseSpec;
let installed = false;

const brokerUrl = () => `https://${nodeInfo().nodeIP}:${spec.ports.https}`;

function createTlsSecret(): void {
  const tls = selfSignedCert(mkdtempSync(join(dir, 'tls-')), nodeInfo().nodeIP);
  ca = tls.ca;
  kubectlAdmin([
    '-n',
    brokerNs.name,
    'create',
    'secret',
    'tls',
    'k8s-ea-broker-tls',
    `--cert=${tls.certFile}`,
    `--key=${tls.keyFile}`,
  ]);
}

/** A runner job of this cluster: the issuer's token endpoint, trusted like the broker (its CA). */
function newJob(): RunnerJob {
  return createJob({
    idToken: { url: issuer.issuer.idTokenRequestUrl, token: issuer.issuer.idTokenRequestToken },
    env: { NODE_EXTRA_CA_CERTS: issuer.caFile },
  });
}

const actionInputs = (extra: Record<string, string> = {}) => ({
  'broker-url': brokerUrl(),
  'broker-ca': ca.toString('utf8'),
  namespace: jobNs.name,
  role: 'deployer',
  ttl: '600',
  ...extra,
});

/** The audit lines (stdout JSON with an `action`) of every running broker pod, by pod. */
function auditLines(): { pod: string; line: Record<string, unknown> }[] {
  return kubectlAdmin([
    '-n',
    brokerNs.name,
    'get',
    'pods',
    '-l',
    'app.kubernetes.io/name=k8s-ephemeral-access-broker',
    '-o',
    'name',
  ])
    .split('\n')
    .filter(Boolean)
    .map((n) => n.replace('pod/', ''))
    .flatMap((pod) =>
      podLog(brokerNs.name, pod)
        .filter((l) => 'action' in l)
        .map((line) => ({ pod, line })),
    );
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
    image = buildAndImport(dir);
    issuer = await startPodIssuer(dir);
    brokerNs = await freshNamespace('pods-broker');
    jobNs = await freshNamespace('pods-job');
    createTlsSecret();
    const [https, gateway] = freeNodePorts(2) as [number, number];
    spec = {
      image,
      issuer,
      policy: policyYaml({ namespaces: [jobNs.name], rules: [{ roles: ['deployer', 'viewer'] }] }),
      ports: { https, gateway },
    };
    const started = Date.now();
    helmApply('install', RELEASE, brokerNs.name, releaseValues(spec), dir);
    installed = true;
    await waitRolledOut(brokerNs.name, 2);
    console.log(`both broker pods Ready ${Date.now() - started} ms after helm install began`);
  }, 300_000);

  afterAll(async () => {
    if (installed)
      helm(['uninstall', RELEASE, '-n', brokerNs.name, '--wait', '--kubeconfig', adminKubeconfigPath()]);
    await jobNs?.remove();
    await brokerNs?.remove();
    await issuer?.issuer.close();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test('the pods are Ready through their probes, with the policy ConfigMap and the TLS Secret, and use their projected token', async () => {
    const pods = await waitRolledOut(brokerNs.name, 2);
    const names = pods.map((p) => p.metadata.name);
    for (const name of names) {
      const listening = podLog(brokerNs.name, name).find((l) => l.msg === 'broker listening');
      // The policy from the policy ConfigMap: its one namespace.
      expect(listening).toMatchObject({ namespaces: [jobNs.name] });
    }
    // TLS from the Secret: its certificate (and nothing else) verifies the answer through the NodePort.
    const health = await brokerRequest(brokerUrl(), 'GET', '/healthz', {}, ca);
    expect(health.status).toBe(200);
    await expect(
      brokerRequest(brokerUrl(), 'GET', '/healthz', {}, readFileSync(issuer.caFile)),
    ).rejects.toThrow();
    const sa = `system:serviceaccount:${brokerNs.name}:k8s-ea-broker`;
    const byBroker = readAudit().filter((e) => e.user.username === sa);
    expect(byBroker.length).toBeGreaterThan(0);
    // A bound (projected) token carries the pod it was issued for; the test's kubeconfig never does.
    const podNames = new Set(
      byBroker.map((e) => e.user.extra?.['authentication.kubernetes.io/pod-name']?.[0]),
    );
    // Every request of the ServiceAccount came from a pod's token; these pods' among them.
    expect(podNames.has(undefined)).toBe(false);
    for (const name of names) expect(podNames.has(name)).toBe(true);
  }, 180_000);

  test("the action's main step exchanges through the broker's Service (kube-proxy's NodePort), kubectl uses the kubeconfig, post revokes", async () => {
    // Nothing listens on the node's address at the node port: kube-proxy's rules in the node's
    // namespace carry the connection to a broker pod (one of the Service's endpoints).
    const inNode = (cmd: string[]) =>
      spawnSync('nsenter', [`--net=${nodeInfo().netns}`, ...cmd], { encoding: 'utf8' }).stdout;
    expect(inNode(['iptables', '-w', '-t', 'nat', '-S', 'KUBE-NODEPORTS'])).toMatch(
      new RegExp(`--dport ${spec.ports.https} .*-j KUBE-EXT-`),
    );
    expect(inNode(['ss', '-Htln', `sport = :${spec.ports.https}`])).toBe('');
    const job = newJob();
    try {
      const main = await job.main(actionInputs());
      if (main.exitCode !== 0) throw new Error(`main failed: ${main.errors.join('; ')}\n${main.stderr}`);
      const grantId = main.outputs['grant-id']!;
      expect(main.outputs['service-account']).toBe(`system:serviceaccount:${jobNs.name}:${grantId}`);
      const exchange = auditLines().find((a) => a.line.action === 'exchange' && a.line.grantId === grantId);
      expect(exchange).toBeDefined();
      console.log(`exchange ${grantId} answered by pod ${exchange!.pod} through the NodePort`);

      const created = await job.exec('kubectl', [
        'create',
        'configmap',
        'from-pods-job',
        '--from-literal=a=b',
      ]);
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
      const whoami = await job.exec('kubectl', [
        'auth',
        'whoami',
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      expect(whoami.stdout).toBe(main.outputs['service-account']);
      const denied = await job.exec('kubectl', ['get', 'secrets']);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/forbidden/i);

      const kubeconfig = load(readFileSync(main.outputs.kubeconfig!, 'utf8')) as {
        users: { user: { token: string } }[];
      };
      const token = kubeconfig.users[0]!.user.token;
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.log).toContain(`Revoked grant ${grantId} through the broker.`);
      expect(managedObjects([jobNs.name]).filter((o) => o.includes(grantId))).toEqual([]);
      const revocation = auditLines().find(
        (a) => a.line.action === 'revocation' && a.line.grantId === grantId,
      );
      expect(revocation).toBeDefined();
      const kc = tokenKubeconfig(token, jobNs.name);
      try {
        await waitFor(
          'the revoked token refused',
          () => (kubectlStatus(kc.path, ['get', 'configmaps']).status === 401 ? true : undefined),
          30_000,
          500,
        );
      } finally {
        kc.cleanup();
      }
    } finally {
      job.cleanup();
    }
  }, 120_000);
});
