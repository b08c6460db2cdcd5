// The admission guard (deploy/admission-guard.yaml) on the real API server: what a grant deploys stays
// inside the grant. Every route below was open to a `deployer` grant before the guard; each is refused
// with the guard's message, while ordinary workloads pass and other identities are untouched.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  adminKubeconfigPath,
  freshNamespace,
  kubectl,
  rbacApi,
  uniqueName,
} from '../../test/support/cluster.js';
import { grantName, identities } from './support/identities.js';

type Manifest = Record<string, unknown>;
let ns: { name: string; remove: () => Promise<void> };
const ids = identities();
const identity = ids.make;
let grant: string; // kubeconfig of a grant identity (gha-<32 hex>) holding the shipped deployer role and more
let otherGrantSa: string; // a second live grant's ServiceAccount in the same namespace
let plainSa: string; // kubeconfig of a non-grant ServiceAccount with the same rights

// Beyond the shipped k8s-ea-deployer: every other pod-creating kind, pod updates and ServiceAccounts, so
// that the guard (not RBAC) is what refuses each route below.
const EXTRA_RULES = [
  { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get', 'create', 'update', 'patch'] },
  { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ['get', 'create', 'update', 'patch'] },
  {
    apiGroups: [''],
    resources: ['pods', 'podtemplates', 'replicationcontrollers', 'serviceaccounts'],
    verbs: ['get', 'create', 'update', 'patch'],
  },
];

const DEPLOYER: [string, string] = ['ClusterRole', 'k8s-ea-deployer'];
const WIDE: [string, string][] = [DEPLOYER, ['Role', 'extra']];

beforeAll(async () => {
  ns = await freshNamespace('guard');
  await rbacApi().createNamespacedRole({
    namespace: ns.name,
    body: { metadata: { name: 'extra' }, rules: EXTRA_RULES },
  });
  grant = await identity(ns.name, grantName(), WIDE);
  otherGrantSa = grantName();
  await identity(ns.name, otherGrantSa, WIDE);
  plainSa = await identity(ns.name, uniqueName('ci-bot'), WIDE);
});
afterAll(async () => {
  ids.cleanup();
  await ns.remove();
});

const apply = (kubeconfig: string, manifest: Manifest) =>
  kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify(manifest));

function expectRefused(manifest: Manifest, message: RegExp) {
  const r = apply(grant, manifest);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/ValidatingAdmissionPolicy 'k8s-ea-grant-guard'/);
  expect(r.stderr).toMatch(message);
}

const container = (extra: Manifest = {}) => ({ name: 'app', image: 'registry.invalid/app:1', ...extra });
const podSpec = (extra: Manifest = {}, c: Manifest = {}) => ({ containers: [container(c)], ...extra });
const deployment = (spec: Manifest, name = uniqueName('web')) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec },
  },
});

const MSG = {
  grantSa: /may not run as a k8s-ephemeral-access grant's ServiceAccount/,
  sa: /may run only as default in this namespace/,
  volume: /may use only configMap, emptyDir, downwardAPI, persistentVolumeClaim and ephemeral volumes/,
  env: /may not read Secrets through env/,
  host: /may not use the node's network, PID or IPC namespace/,
  privileged: /may not be privileged or add capabilities/,
  externalIPs: /Services may not set externalIPs/,
  forgedSa: /may not create or edit ServiceAccounts that look like k8s-ephemeral-access grants/,
  priority: /may not use a system- priority class/,
};

describe('a grant may not deploy past its role', () => {
  test("a Deployment naming another live grant's ServiceAccount is refused", () => {
    expectRefused(deployment(podSpec({ serviceAccountName: otherGrantSa })), MSG.grantSa);
  });

  test.each([
    ['serviceAccountName', { serviceAccountName: 'builder' }],
    ['the deprecated serviceAccount field', { serviceAccount: 'builder' }],
  ])('a ServiceAccount the namespace does not allow, through %s, is refused', (_, extra) => {
    expectRefused(deployment(podSpec(extra)), MSG.sa);
  });

  test.each([
    ['a Secret volume', { secret: { secretName: 'db' } }],
    ['a projected Secret', { projected: { sources: [{ secret: { name: 'db' } }] } }],
    [
      'a projected ServiceAccount token with any audience',
      {
        projected: {
          sources: [{ serviceAccountToken: { audience: 'vault', expirationSeconds: 86400, path: 't' } }],
        },
      },
    ],
    ['a hostPath', { hostPath: { path: '/' } }],
    ['an inline CSI volume', { csi: { driver: 'secrets-store.csi.k8s.io' } }],
  ])('%s is refused', (_, volume) => {
    expectRefused(deployment(podSpec({ volumes: [{ name: 'v', ...volume }] })), MSG.volume);
  });

  test.each([
    ['env secretKeyRef', { env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'db', key: 'p' } } }] }],
    ['envFrom secretRef', { envFrom: [{ secretRef: { name: 'db' } }] }],
  ])('%s is refused, in containers and init containers', (_, c) => {
    expectRefused(deployment(podSpec({}, c)), MSG.env);
    expectRefused(deployment({ ...podSpec(), initContainers: [container({ name: 'init', ...c })] }), MSG.env);
  });

  test.each([['hostNetwork'], ['hostPID'], ['hostIPC']])('%s is refused', (field) => {
    expectRefused(deployment(podSpec({ [field]: true })), MSG.host);
  });

  test.each([
    ['a privileged container', { securityContext: { privileged: true } }],
    ['an added capability', { securityContext: { capabilities: { add: ['SYS_ADMIN'] } } }],
  ])('%s is refused', (_, c) => {
    expectRefused(deployment(podSpec({}, c)), MSG.privileged);
  });

  // Issue 24: the cluster's own priority classes preempt its system pods (accepted before the change).
  test.each([['system-node-critical'], ['system-cluster-critical']])(
    'a pod template with priorityClassName %s is refused',
    (priorityClassName) => {
      expectRefused(deployment(podSpec({ priorityClassName })), MSG.priority);
      expectRefused(
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: uniqueName('p') },
          spec: podSpec({ priorityClassName }),
        },
        MSG.priority,
      );
    },
  );

  test('a Service with externalIPs is refused', () => {
    expectRefused(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: uniqueName('svc') },
        spec: { selector: { app: 'x' }, ports: [{ port: 80 }], externalIPs: ['203.0.113.10'] },
      },
      MSG.externalIPs,
    );
  });

  test('a ServiceAccount dressed as a grant is refused', () => {
    expectRefused(
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: grantName() } },
      MSG.forgedSa,
    );
    expectRefused(
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: uniqueName('sa'),
          labels: { 'app.kubernetes.io/managed-by': 'k8s-ephemeral-access' },
        },
      },
      MSG.forgedSa,
    );
  });

  const secretVolume = podSpec({ volumes: [{ name: 'v', secret: { secretName: 'db' } }] });
  const template = (spec: Manifest, name: string) => ({ metadata: { labels: { app: name } }, spec });
  const selector = (name: string) => ({ matchLabels: { app: name } });
  test.each<[string, (name: string) => Manifest]>([
    ['Pod', (name) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: secretVolume })],
    [
      'ReplicaSet',
      (name) => ({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name },
        spec: { selector: selector(name), template: template(secretVolume, name) },
      }),
    ],
    [
      'StatefulSet',
      (name) => ({
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name },
        spec: { serviceName: name, selector: selector(name), template: template(secretVolume, name) },
      }),
    ],
    [
      'DaemonSet',
      (name) => ({
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name },
        spec: { selector: selector(name), template: template(secretVolume, name) },
      }),
    ],
    [
      'Job',
      (name) => ({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name },
        spec: { template: { spec: { ...secretVolume, restartPolicy: 'Never' } } },
      }),
    ],
    [
      'CronJob',
      (name) => ({
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name },
        spec: {
          schedule: '0 0 * * *',
          jobTemplate: { spec: { template: { spec: { ...secretVolume, restartPolicy: 'Never' } } } },
        },
      }),
    ],
    [
      'ReplicationController',
      (name) => ({
        apiVersion: 'v1',
        kind: 'ReplicationController',
        metadata: { name },
        spec: { selector: { app: name }, template: template(secretVolume, name) },
      }),
    ],
    [
      'PodTemplate',
      (name) => ({
        apiVersion: 'v1',
        kind: 'PodTemplate',
        metadata: { name },
        template: template(secretVolume, name),
      }),
    ],
  ])('every pod-creating kind is guarded: a %s with a Secret volume is refused', (_, make) => {
    expectRefused(make(uniqueName('w')), MSG.volume);
  });

  test('a grant may not take over a running pod that mounts a Secret by patching it (e.g. its image)', async () => {
    const name = uniqueName('existing');
    expect(
      apply(adminKubeconfigPath(), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns.name },
        spec: secretVolume,
      }).status,
    ).toBe(0);
    const r = kubectl(grant, [
      'patch',
      'pod',
      name,
      '-p',
      JSON.stringify({ spec: { containers: [container({ image: 'evil.invalid/x:1' })] } }),
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(MSG.volume);
  });
});

describe('what the guard lets through', () => {
  test("a bare Pod passes with the token volume the API server mounts, as a Deployment's pods get it", () => {
    const name = uniqueName('bare');
    const r = apply(grant, { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: podSpec() });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const volumes = kubectl(adminKubeconfigPath(), ['-n', ns.name, 'get', 'pod', name, '-o', 'json']);
    expect(volumes.stdout).toMatch(/"serviceAccountToken"/);
  });

  test('an ordinary Deployment, Service and ConfigMap pass', () => {
    const name = uniqueName('app');
    for (const m of [
      deployment(
        podSpec(
          {
            volumes: [
              { name: 'cfg', configMap: { name } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
          { env: [{ name: 'C', valueFrom: { configMapKeyRef: { name, key: 'k' } } }] },
        ),
        name,
      ),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name },
        spec: { selector: { app: name }, ports: [{ port: 80 }] },
      },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: 'v' } },
    ]) {
      const r = apply(grant, m);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });

  test('requests of other identities are untouched, with the same rights', () => {
    const manifest = deployment(podSpec({ serviceAccountName: otherGrantSa, hostNetwork: true }));
    expect(apply(plainSa, manifest).status).toBe(0);
    expect(
      apply(adminKubeconfigPath(), { ...manifest, metadata: { name: uniqueName('adm'), namespace: ns.name } })
        .status,
    ).toBe(0);
  });

  test('a cluster admin opts a namespace in to system priority classes, explicitly', async () => {
    const optIn = await freshNamespace('guard-prio');
    try {
      kubectl(adminKubeconfigPath(), [
        'annotate',
        'namespace',
        optIn.name,
        'k8s-ephemeral-access.io/allow-system-priority=true',
      ]);
      const kc = await identity(optIn.name, grantName(), [DEPLOYER]);
      const ok = apply(kc, deployment(podSpec({ priorityClassName: 'system-cluster-critical' })));
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
    } finally {
      await optIn.remove();
    }
  });

  test('a cluster admin opts a namespace in to Secret references and more ServiceAccounts, explicitly', async () => {
    const optIn = await freshNamespace('guard-optin');
    try {
      kubectl(adminKubeconfigPath(), [
        'annotate',
        'namespace',
        optIn.name,
        'k8s-ephemeral-access.io/allow-secret-refs=true',
        'k8s-ephemeral-access.io/allowed-service-accounts=default, app',
      ]);
      const kc = await identity(optIn.name, grantName(), [DEPLOYER]);
      const ok = apply(
        kc,
        deployment(
          podSpec(
            { serviceAccountName: 'app', volumes: [{ name: 'v', secret: { secretName: 'db' } }] },
            { envFrom: [{ secretRef: { name: 'db' } }] },
          ),
        ),
      );
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      // The system priority classes have their own opt-in, off here.
      const critical = apply(kc, deployment(podSpec({ priorityClassName: 'system-node-critical' })));
      expect(critical.status).not.toBe(0);
      expect(critical.stderr).toMatch(MSG.priority);
      // What has no opt-in stays refused there too.
      const still = apply(kc, deployment(podSpec({ volumes: [{ name: 'v', hostPath: { path: '/' } }] })));
      expect(still.status).not.toBe(0);
      expect(still.stderr).toMatch(MSG.volume);
    } finally {
      await optIn.remove();
    }
  });
});
