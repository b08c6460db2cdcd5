// The broker as an admin installs it with kustomize, on the test cluster's real node: `kubectl apply -k`
// of an overlay of deploy/, written here as docs/operations.md's "Install with kustomize" describes: the
// image `npm run image` builds (imported into the node's containerd, never pulled) through `images:`,
// this cluster's issuer and API server in the config generator, the policy generator under its fixed
// name, the TLS Secret from a secret generator, and the policy's RBAC in the job namespace. The runner
// (this process) reaches the broker through the Service, made a NodePort: kube-proxy's rules on the node.
// One install serves the whole file; the tests run in order.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { dump, load } from 'js-yaml';
import {
  adminKubeconfigPath,
  clusterEndpoint,
  freshNamespace,
  kubectl,
  kubectlAdmin,
  readAudit,
  tokenKubeconfig,
} from '../../../test/support/cluster.js';
import { lockBrokerInstall } from '../../../test/support/broker-install-lock.js';
import { managedObjects } from '../../../test/support/managed-objects.js';
import { describeOnNode, nodeInfo } from '../../../test/support/node.js';
import type { BuildReport } from '../../../test/support/oci-image.js';
import { policyYaml } from '../../../test/support/policy.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import { selfSignedCert } from '../../../test/support/tls.js';
import { policyDigest } from '../../../src/broker/policy/load-policy.js';
import {
  brokerPods,
  everyBrokerPodLogged,
  exchangeAt,
  localBrokerImage,
  podLog,
  podRestarts,
  revokeAt,
  startPodIssuer,
  waitRolledOut,
  type PodIssuer,
} from './support/broker-release.js';
import { generatedRbacYaml } from './support/chart.js';
import { BROKER_NS, removeBrokerClusterObjects, removeNamespaces } from './support/deploy-install.js';

/** The image deploy/deployment.yaml names; the overlay's `images:` replaces it. */
const BASE_IMAGE = 'ghcr.io/k8s-ephemeral-access/broker';

let dir: string;
let overlay: string;
let image: BuildReport;
let issuer: PodIssuer;
let jobNs: { name: string; remove: () => Promise<void> };
let ca: Buffer;
let policy: string;
let applyOutput: string;
let unlock: (() => void) | undefined;

const admin = (args: string[]) =>
  spawnSync('kubectl', ['--kubeconfig', adminKubeconfigPath(), ...args], { encoding: 'utf8' });

/** `kubectl apply -k` of the overlay; its stdout (throws with stderr when it fails). */
function applyOverlay(): string {
  const r = admin(['apply', '-k', overlay]);
  if (r.status !== 0) throw new Error(`kubectl apply -k failed: ${r.stderr}`);
  return r.stdout;
}

/** The config deploy/ ships (deploy/examples/broker-config.yaml), pointed at this cluster's issuer. */
function brokerConfig(): string {
  const shipped = load(readFileSync(join(repoRoot, 'deploy/examples/broker-config.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  return dump({
    ...shipped,
    issuers: [issuer.issuer.issuer],
    // Runners (this process) reach the API server at its own address, not the in-cluster Service's.
    clusterServer: clusterEndpoint().server,
    clusterCaFile: 'cluster-ca.crt',
  });
}

/** Writes the overlay: kustomization.yaml and the files its generators read. */
function writeOverlay(): void {
  const tls = selfSignedCert(mkdtempSync(join(dir, 'tls-')), nodeInfo().nodeIP);
  ca = tls.ca;
  const files: Record<string, string | Buffer> = {
    'broker-config.yaml': brokerConfig(),
    'cluster-ca.crt': Buffer.from(clusterEndpoint().caData, 'base64'),
    'issuer-ca.crt': readFileSync(issuer.caFile),
    'policy.yaml': policy,
    'tls.crt': readFileSync(tls.certFile),
    'tls.key': readFileSync(tls.keyFile),
    // The broker's RBAC the policy needs, as `rbac generate` prints it (deploy/job-namespace-rbac.yaml).
    'job-namespace-rbac.yaml': generatedRbacYaml(policy, BROKER_NS),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(overlay, name), content);
  const [newName, newTag] = image.image.split(':') as [string, string];
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    // A relative path: kustomize refuses absolute ones.
    resources: [relative(overlay, join(repoRoot, 'deploy')), 'job-namespace-rbac.yaml'],
    images: [{ name: BASE_IMAGE, newName, newTag }],
    configMapGenerator: [
      {
        name: 'k8s-ea-broker-config',
        namespace: BROKER_NS,
        behavior: 'replace',
        files: ['broker-config.yaml', 'cluster-ca.crt', 'issuer-ca.crt'],
      },
      {
        name: 'k8s-ea-broker-policy',
        namespace: BROKER_NS,
        behavior: 'replace',
        files: ['policy.yaml'],
        options: { disableNameSuffixHash: true },
      },
    ],
    secretGenerator: [
      {
        name: 'k8s-ea-broker-tls',
        namespace: BROKER_NS,
        type: 'kubernetes.io/tls',
        files: ['tls.crt', 'tls.key'],
        options: { disableNameSuffixHash: true },
      },
    ],
    patches: [
      {
        target: { kind: 'Deployment', name: 'k8s-ea-broker' },
        // The image is on the node only; the pods trust the test issuer's CA besides the public roots.
        patch: dump([
          { op: 'add', path: '/spec/template/spec/containers/0/imagePullPolicy', value: 'Never' },
          {
            op: 'add',
            path: '/spec/template/spec/containers/0/env/-',
            value: { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/k8s-ea/issuer-ca.crt' },
          },
        ]),
      },
      {
        target: { kind: 'Service', name: 'k8s-ea-broker' },
        patch: dump([{ op: 'add', path: '/spec/type', value: 'NodePort' }]),
      },
    ],
  };
  writeFileSync(join(overlay, 'kustomization.yaml'), dump(kustomization));
}

const brokerUrl = () => {
  const port = kubectlAdmin([
    '-n',
    BROKER_NS,
    'get',
    'svc',
    'k8s-ea-broker',
    '-o',
    'jsonpath={.spec.ports[?(@.name=="https")].nodePort}',
  ]);
  return `https://${nodeInfo().nodeIP}:${port}`;
};

const exchange = (role: string) => exchangeAt(brokerUrl(), ca, issuer, { namespace: jobNs.name, role });

describeOnNode('the broker installed by kubectl apply -k of an overlay on the real node', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ea-kustomize-'));
    overlay = mkdtempSync(join(dir, 'overlay-'));
    image = await localBrokerImage();
    // deploy/'s namespace and cluster-scoped objects are also fresh-cluster's and the chart's.
    unlock = await lockBrokerInstall('broker-kustomize');
    // An earlier run stopped half-way may have left them.
    await removeNamespaces([BROKER_NS]);
    removeBrokerClusterObjects();
    issuer = await startPodIssuer(dir);
    jobNs = await freshNamespace('kustomize-job');
    policy = policyYaml({ namespaces: [jobNs.name], rules: [{ roles: ['deployer', 'viewer'] }] });
    writeOverlay();
    const started = Date.now();
    applyOutput = applyOverlay();
    await waitRolledOut(BROKER_NS, 2);
    console.log(`both broker pods Ready ${Date.now() - started} ms after kubectl apply -k`);
  }, 900_000);

  afterAll(async () => {
    // Not `kubectl delete -k`: the overlay holds the shared admission guard and job roles too.
    await removeNamespaces([BROKER_NS]);
    removeBrokerClusterObjects();
    await jobNs?.remove();
    await issuer?.issuer.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    unlock?.();
  }, 180_000);

  test('the pods run the local image, Ready through their probes, with the generated config, policy and Secret, and their projected token', () => {
    for (const what of [
      'deployment.apps/k8s-ea-broker',
      'configmap/k8s-ea-broker-policy',
      'secret/k8s-ea-broker-tls',
      'service/k8s-ea-broker',
    ])
      expect(applyOutput).toMatch(new RegExp(`^${what.replace(/\./g, '\\.')} created$`, 'm'));
    expect(applyOutput).toMatch(/^configmap\/k8s-ea-broker-config-[a-z0-9]+ created$/m);
    const pods = brokerPods(BROKER_NS);
    expect(pods).toHaveLength(2);
    const spec = JSON.parse(
      kubectlAdmin(['-n', BROKER_NS, 'get', 'deployment', 'k8s-ea-broker', '-o', 'json']),
    ) as { spec: { template: { spec: { containers: { image: string; imagePullPolicy: string }[] } } } };
    expect(spec.spec.template.spec.containers[0]).toMatchObject({
      image: image.image,
      imagePullPolicy: 'Never',
    });
    for (const { metadata } of pods) {
      // The policy from the generated ConfigMap: its one namespace.
      const listening = podLog(BROKER_NS, metadata.name).find((l) => l.msg === 'broker listening');
      expect(listening).toMatchObject({ namespaces: [jobNs.name] });
    }
    // A bound (projected) token names the pod it was issued for: each pod used its own.
    const sa = `system:serviceaccount:${BROKER_NS}:k8s-ea-broker`;
    const podNames = new Set(
      readAudit()
        .filter((e) => e.user.username === sa)
        .map((e) => e.user.extra?.['authentication.kubernetes.io/pod-name']?.[0]),
    );
    for (const { metadata } of pods) expect(podNames.has(metadata.name)).toBe(true);
  });

  test("an exchange through the Service (kube-proxy's NodePort) grants the policy's role; the grant works and is revoked", async () => {
    const url = brokerUrl();
    // TLS from the generated Secret: its certificate (the only CA given) verifies the answer.
    const granted = await exchange('deployer');
    expect(granted.status).toBe(200);
    const g = granted.body;
    const answeredBy = brokerPods(BROKER_NS).find(({ metadata }) =>
      podLog(BROKER_NS, metadata.name).some((l) => l.action === 'exchange' && l.grantId === g.grantId),
    );
    expect(answeredBy).toBeDefined();
    console.log(`exchange ${g.grantId} answered by pod ${answeredBy!.metadata.name} through the NodePort`);
    const kc = tokenKubeconfig(g.token, jobNs.name);
    try {
      const who = kubectl(kc.path, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
      expect(who.stdout).toBe(`system:serviceaccount:${jobNs.name}:${g.grantId}`);
      expect(kubectl(kc.path, ['auth', 'can-i', 'create', 'deployments']).stdout.trim()).toBe('yes');
      expect(kubectl(kc.path, ['auth', 'can-i', 'get', 'secrets']).stdout.trim()).toBe('no');
    } finally {
      kc.cleanup();
    }
    expect(await revokeAt(url, ca, g)).toBe(200);
    expect(managedObjects([jobNs.name]).filter((o) => o.includes(g.grantId))).toEqual([]);
  }, 60_000);

  test('a policy edit the kustomize way (its generator applied again) reaches the running pods, with no restart and no rollout', async () => {
    const before = podRestarts(BROKER_NS);
    const generation = () =>
      kubectlAdmin([
        '-n',
        BROKER_NS,
        'get',
        'deployment',
        'k8s-ea-broker',
        '-o',
        'jsonpath={.metadata.generation}',
      ]);
    const generationBefore = generation();
    const viewer = await exchange('viewer');
    expect(viewer.status).toBe(200);
    expect(await revokeAt(brokerUrl(), ca, viewer.body)).toBe(200);

    // Deployer only: the viewer role is no longer granted.
    const deployerOnly = policyYaml({ namespaces: [jobNs.name], rules: [{ roles: ['deployer'] }] });
    writeFileSync(join(overlay, 'policy.yaml'), deployerOnly);
    const applied = Date.now();
    const out = applyOverlay();
    // The policy's ConfigMap, updated in place; the Deployment (and its config ConfigMap) untouched.
    expect(out).toMatch(/^configmap\/k8s-ea-broker-policy configured$/m);
    expect(out).toMatch(/^deployment\.apps\/k8s-ea-broker unchanged$/m);
    expect(out).toMatch(/^configmap\/k8s-ea-broker-config-[a-z0-9]+ unchanged$/m);
    const ms = await everyBrokerPodLogged(
      BROKER_NS,
      'policy reloaded',
      { sha256: policyDigest(deployerOnly) },
      applied,
    );
    console.log(`policy edit (kubectl apply -k) live in both pods ${ms} ms after the apply`);
    expect((await exchange('viewer')).status).toBe(403);
    const deployer = await exchange('deployer');
    expect(deployer.status).toBe(200);
    expect(await revokeAt(brokerUrl(), ca, deployer.body)).toBe(200);
    // Same pods, never restarted, and no new revision of the Deployment.
    expect(podRestarts(BROKER_NS)).toEqual(before);
    expect(generation()).toBe(generationBefore);
  }, 180_000);
});
