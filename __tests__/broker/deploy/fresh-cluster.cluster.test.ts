// The admin steps of docs/operations.md on a control plane where none of deploy/'s namespaces exist, with
// the real kubectl: `kubectl apply -k deploy/`, the one-command TLS Secret, the job namespaces and their
// RBAC (deploy/job-namespace-rbac.yaml). A broker then runs with exactly what was applied (the ConfigMap's
// config and policy, the Secret's certificate, the applied ServiceAccount's token and RBAC) and serves an
// exchange. The broker runs as a process here, not as the Deployment's pods: deploy/ as it is names the
// released image, from a registry the test cluster cannot reach (broker-kustomize.cluster.test.ts runs the
// pods of an overlay with the locally built image).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { dump, load } from 'js-yaml';
import {
  adminKubeconfigPath,
  coreApi,
  kubectl,
  kubectlStatus,
  tokenKubeconfig,
  waitFor,
} from '../../../test/support/cluster.js';
import { rbacJobNamespaces, type BrokerRbac } from '../../../test/support/deploy-rbac.js';
import { lockBrokerInstall } from '../../../test/support/broker-install-lock.js';
import { startBroker, type RunningBroker } from '../../../test/support/broker.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { startOidcIssuer, type OidcIssuer } from '../../../test/support/oidc-issuer.js';
import { selfSignedCert } from '../../../test/support/tls.js';
import { BROKER_NS, removeBrokerClusterObjects, removeNamespaces } from './support/deploy-install.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import type { ExchangeResponse } from '../../../src/shared/api.js';

const deployDir = join(repoRoot, 'deploy');
/** The job namespaces deploy/job-namespace-rbac.yaml names (whatever policy it was generated from). */
const jobNamespaces = rbacJobNamespaces();

let dir: string;
let issuer: OidcIssuer;
let broker: RunningBroker | undefined;
const cleanups: (() => void)[] = [];
let unlock: (() => void) | undefined;

const admin = (args: string[], input?: string) =>
  spawnSync('kubectl', ['--kubeconfig', adminKubeconfigPath(), ...args], { encoding: 'utf8', input });

beforeAll(async () => {
  // The broker's cluster-scoped objects are also the Helm install's (broker-pods): one at a time.
  unlock = await lockBrokerInstall('fresh-cluster');
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-fresh-'));
  // Fresh: none of the namespaces deploy/ uses, nor the broker's cluster-scoped objects (an earlier run
  // stopped half-way may have left them).
  await removeNamespaces([BROKER_NS, ...jobNamespaces]);
  removeBrokerClusterObjects();
  issuer = await startOidcIssuer();
}, 900_000);

afterAll(async () => {
  await broker?.stop();
  await issuer?.close();
  cleanups.forEach((c) => c());
  await removeNamespaces([BROKER_NS, ...jobNamespaces]);
  removeBrokerClusterObjects();
  rmSync(dir, { recursive: true, force: true });
  unlock?.();
}, 180_000);

test('kubectl apply -k deploy/ applies cleanly where none of its namespaces exist', async () => {
  expect(jobNamespaces.length).toBeGreaterThan(0);
  const r = admin(['apply', '-k', deployDir]);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
  for (const what of [
    `namespace/${BROKER_NS}`,
    'serviceaccount/k8s-ea-broker',
    'deployment.apps/k8s-ea-broker',
    'role.rbac.authorization.k8s.io/k8s-ea-broker-lease',
    'rolebinding.rbac.authorization.k8s.io/k8s-ea-broker-lease',
    'clusterrolebinding.rbac.authorization.k8s.io/k8s-ea-broker-tokenreview',
    'networkpolicy.networking.k8s.io/k8s-ea-broker',
    'service/k8s-ea-broker',
    'poddisruptionbudget.policy/k8s-ea-broker',
  ])
    expect(r.stdout).toMatch(new RegExp(`^${what.replace(/\./g, '\\.')} created$`, 'm'));
  // Shared with the other test files (global set-up installs them): already there, so not "created".
  for (const what of [
    'clusterrole.rbac.authorization.k8s.io/k8s-ea-deployer',
    'validatingadmissionpolicy.admissionregistration.k8s.io/k8s-ea-grant-guard',
  ])
    expect(r.stdout).toMatch(
      new RegExp(`^${what.replace(/\./g, '\\.')} (created|configured|unchanged)$`, 'm'),
    );
  expect(r.stdout).toMatch(/^configmap\/k8s-ea-broker-config-[a-z0-9]+ created$/m);
  // The policy under a fixed name: a later policy change updates it in place (hot reload, no rollout).
  expect(r.stdout).toMatch(/^configmap\/k8s-ea-broker-policy created$/m);
  // Nothing in a job namespace: that is a separate step.
  for (const ns of jobNamespaces) expect(r.stdout).not.toContain(ns);
  // The Deployment's pods pass the namespace's restricted Pod Security admission (they stay Pending:
  // their image is not on the node, and nothing is pulled).
  const pods = await waitFor('the Deployment creates its 2 pods', async () => {
    const list = await coreApi().listNamespacedPod({ namespace: BROKER_NS });
    return list.items.length >= 2 ? list.items : undefined;
  });
  expect(pods.every((p) => p.spec?.serviceAccountName === 'k8s-ea-broker')).toBe(true);
});

test('the TLS Secret is one command, and the job namespaces get their RBAC with one apply', () => {
  const tls = selfSignedCert(dir);
  // The command docs/operations.md gives.
  const secret = admin([
    '-n',
    BROKER_NS,
    'create',
    'secret',
    'tls',
    'k8s-ea-broker-tls',
    `--cert=${tls.certFile}`,
    `--key=${tls.keyFile}`,
  ]);
  expect(secret.stderr).toBe('');
  expect(secret.status).toBe(0);
  for (const ns of jobNamespaces) expect(admin(['create', 'namespace', ns]).status).toBe(0);
  const rbac = admin(['apply', '-f', join(deployDir, 'job-namespace-rbac.yaml')]);
  expect(rbac.stderr).toBe('');
  expect(rbac.status).toBe(0);
  // The role reader is generated with the rest of the broker's policy-derived RBAC.
  expect(rbac.stdout).toMatch(
    /^clusterrolebinding\.rbac\.authorization\.k8s\.io\/k8s-ea-broker-role-reader created$/m,
  );
  for (const ns of jobNamespaces)
    expect(
      admin([
        'auth',
        'can-i',
        'create',
        'serviceaccounts/token',
        '-n',
        ns,
        `--as=system:serviceaccount:${BROKER_NS}:k8s-ea-broker`,
      ]).stdout.trim(),
    ).toBe('yes');
});

test('a broker with what was applied (config, policy, certificate, ServiceAccount) serves an exchange', async () => {
  // The broker's config and policy as the cluster holds them in the generated ConfigMaps.
  const cms = JSON.parse(
    admin([
      '-n',
      BROKER_NS,
      'get',
      'configmaps',
      '-l',
      'app.kubernetes.io/name=k8s-ephemeral-access-broker',
      '-o',
      'json',
    ]).stdout,
  ) as { items: { data: Record<string, string> }[] };
  // Two: the config (hashed name) and the policy (fixed name), projected into one directory in the pod.
  expect(cms.items).toHaveLength(2);
  const data = Object.assign({}, ...cms.items.map((i) => i.data)) as Record<string, string>;
  const deployed = load(data['broker-config.yaml']!) as Record<string, unknown>;
  expect(deployed.brokerNamespace).toBe(BROKER_NS);
  // The Secret's files, where the Deployment would mount them.
  const secret = JSON.parse(
    admin(['-n', BROKER_NS, 'get', 'secret', 'k8s-ea-broker-tls', '-o', 'json']).stdout,
  ) as {
    type: string;
    data: Record<string, string>;
  };
  expect(secret.type).toBe('kubernetes.io/tls');
  const mount = join(dir, 'k8s-ea-tls');
  mkdirSync(mount);
  for (const f of ['tls.crt', 'tls.key'])
    writeFileSync(join(mount, f), Buffer.from(secret.data[f]!, 'base64'), { mode: 0o600 });
  const ca = Buffer.from(secret.data['tls.crt']!, 'base64');

  // The applied ServiceAccount's own token: the broker has exactly the RBAC deploy/ gave it.
  const tr = await coreApi().createNamespacedServiceAccountToken({
    name: 'k8s-ea-broker',
    namespace: BROKER_NS,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const kc = tokenKubeconfig(tr.status!.token!, BROKER_NS);
  cleanups.push(kc.cleanup);

  // Only what cannot hold outside a pod changes: the listen addresses (the harness picks free ports on
  // 127.0.0.1), the mount path of the certificate, and the issuer (the local one stands in for GitHub).
  const kept = Object.fromEntries(
    Object.entries(deployed).filter(
      ([k]) => !['listen', 'internalListen', 'tls', 'issuers', 'policyFile'].includes(k),
    ),
  );
  broker = await startBroker({
    policyYaml: data['policy.yaml']!,
    issuer: issuer.issuer,
    namespaces: jobNamespaces,
    rbac: { kubeconfigPath: kc.path, brokerNamespace: BROKER_NS } as BrokerRbac,
    https: true,
    tls: { certFile: join(mount, 'tls.crt'), keyFile: join(mount, 'tls.key'), ca },
    config: kept,
  });
  const ask = (token: string, body: unknown) =>
    brokerRequest<ExchangeResponse>(broker!.url, 'POST', '/v1/exchange', { token, body }, ca);

  // The example policy's first rule: repository 123456789 of owner 987654, main, push, GitHub-hosted,
  // which are the local issuer's default claims.
  const granted = await ask(await issuer.sign(), { namespace: 'staging', role: 'deployer', ttlSeconds: 600 });
  expect([granted.status, granted.text]).toEqual([200, expect.any(String)]);
  const grant = tokenKubeconfig(granted.body.token, 'staging');
  cleanups.push(grant.cleanup);
  expect(kubectl(grant.path, ['auth', 'can-i', 'create', 'deployments', '-n', 'staging']).stdout.trim()).toBe(
    'yes',
  );
  expect(kubectlStatus(grant.path, ['-n', BROKER_NS, 'get', 'configmaps'])).toMatchObject({ status: 403 });
  // Another repository: no rule.
  const refused = await ask(await issuer.sign({ repository_id: '1' }), {
    namespace: 'staging',
    role: 'viewer',
  });
  expect(refused.status).toBe(403);
  const revoked = await brokerRequest(
    broker.url,
    'DELETE',
    `/v1/grants/${granted.body.grantId}`,
    { token: granted.body.token },
    ca,
  );
  expect(revoked.status).toBe(200);
});

test("the image is overridden with kustomize's images: in an overlay", () => {
  const overlay = join(dir, 'overlay');
  mkdirSync(overlay);
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    dump({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      // A relative path: kustomize refuses absolute ones.
      resources: [relative(overlay, deployDir)],
      images: [
        {
          name: 'ghcr.io/k8s-ephemeral-access/broker',
          newName: 'registry.example.com/k8s-ea-broker',
          newTag: '9.9.9',
        },
      ],
    }),
  );
  const r = spawnSync('kubectl', ['kustomize', overlay], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  const images = [...r.stdout.matchAll(/image: (\S+)/g)].map((m) => m[1]);
  expect(images).toEqual(['registry.example.com/k8s-ea-broker:9.9.9']);
});

test("the README's and docs/operations.md's admin commands are the ones run here", () => {
  const steps = [
    'kubectl apply -k deploy/',
    'kubectl -n k8s-ephemeral-access create secret tls k8s-ea-broker-tls --cert=tls.crt --key=tls.key',
    `for ns in ${jobNamespaces.join(' ')}; do kubectl create namespace "$ns"; done`,
    'kubectl apply -f deploy/job-namespace-rbac.yaml',
  ];
  for (const doc of ['README.md', join('docs', 'operations.md')]) {
    const blocks = [...readFileSync(join(repoRoot, doc), 'utf8').matchAll(/```bash\n([\s\S]*?)```/g)].map(
      (m) => m[1]!.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()),
    );
    for (const step of steps)
      expect([doc, step, blocks.some((b) => b.includes(step))]).toEqual([doc, step, true]);
  }
});
