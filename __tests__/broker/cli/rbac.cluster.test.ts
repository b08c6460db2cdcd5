// Generated RBAC against the real control plane (issue 14, "must show"): `rbac generate` for a
// two-namespace policy, applied as an admin would, is exactly what the broker needs. The built
// broker grants in both namespaces (one named ClusterRole, one inline role), and is refused by the
// API server in a third namespace its policy names but the RBAC does not. `rbac check` finds the
// cluster matching, and then finds each kind of drift.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../../src/shared/api.js';
import {
  adminKubeconfigPath,
  freshNamespace,
  kubectl,
  kubectlAdmin,
  tryKubectlAdmin,
  uniqueName,
} from '../../../test/support/cluster.js';
import { applyIdempotently, installBrokerRbac, type BrokerRbac } from '../../../test/support/deploy-rbac.js';
import { startBroker, type RunningBroker } from '../../../test/support/broker.js';
import { managedObjects } from '../../../test/support/managed-objects.js';
import { startOidcIssuer, type OidcIssuer } from '../../../test/support/oidc-issuer.js';
import { policyYaml } from '../../../test/support/policy.js';
import { cli, tempFiles } from './support/cli.js';

const files = tempFiles();
const NAME = uniqueName('k8s-ea-gen');
const namespaces: { name: string; remove: () => Promise<void> }[] = [];
let alpha: string;
let beta: string;
let outsider: string;
let rbac: BrokerRbac;
let issuer: OidcIssuer;
let broker: RunningBroker;
let policyAB: string;
let policyABC: string;
let identity: string[];

/** viewer (a named ClusterRole) in alpha, pods (inline) in beta; with `extra`, viewer there too. */
const policyFor = (extra?: string) =>
  policyYaml({
    namespaces: [alpha],
    roles: {
      viewer: { clusterRole: 'k8s-ea-viewer' },
      pods: { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
    },
    rules: [
      { name: 'views', namespaces: extra ? [alpha, extra] : [alpha], roles: ['viewer'] },
      { name: 'pod-reads', namespaces: [beta], roles: ['pods'] },
    ],
  });

const check = async (policy: string) => {
  const run = await cli([
    'rbac',
    'check',
    policy,
    '--kubeconfig',
    adminKubeconfigPath(),
    ...identity,
    '--json',
  ]);
  return { code: run.code, ...(JSON.parse(run.stdout || '{}') as { matches?: boolean; drift?: unknown[] }) };
};

async function exchange(namespace: string, role: string) {
  const token = await issuer.sign();
  return broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token,
    body: { namespace, role, ttlSeconds: 60 },
  });
}

beforeAll(async () => {
  for (const prefix of ['rbac-alpha', 'rbac-beta', 'rbac-outsider'])
    namespaces.push(await freshNamespace(prefix));
  [alpha, beta, outsider] = namespaces.map((n) => n.name) as [string, string, string];
  // The broker's RBAC that no policy decides (ServiceAccount, Lease, TokenReview), for no job namespace.
  rbac = await installBrokerRbac([]);
  identity = [
    '--broker-namespace',
    rbac.brokerNamespace,
    '--service-account',
    rbac.serviceAccount,
    '--name',
    NAME,
  ];
  policyAB = files.write('policy-ab.yaml', policyFor());
  policyABC = files.write('policy-abc.yaml', policyFor(outsider));
  const generated = await cli(['rbac', 'generate', policyAB, ...identity]);
  expect(generated.code).toBe(0);
  applyIdempotently(generated.stdout);
  issuer = await startOidcIssuer();
  // The broker runs the wider policy: the RBAC must be what stops it in the third namespace.
  broker = await startBroker({
    policyYaml: policyFor(outsider),
    issuer: issuer.issuer,
    namespaces: [alpha, beta, outsider],
    rbac,
    https: true,
  });
}, 120_000);

afterAll(async () => {
  await broker?.stop();
  await issuer?.close();
  tryKubectlAdmin(['delete', 'clusterrolebinding,clusterrole', `${NAME}-role-reader`, '--ignore-not-found']);
  await rbac?.cleanup();
  await Promise.all(namespaces.map((n) => n.remove()));
  files.cleanup();
});

describe('the generated RBAC for a two-namespace policy', () => {
  test('lets the broker grant in both namespaces: a named ClusterRole in one, an inline role in the other', async () => {
    const inAlpha = await exchange(alpha, 'viewer');
    expect(inAlpha.status).toBe(200);
    const inBeta = await exchange(beta, 'pods');
    expect(inBeta.status).toBe(200);
    // The inline grant works: its token may list pods in beta, and nothing in alpha.
    const can = (ns: string) =>
      kubectl(adminKubeconfigPath(), [
        'auth',
        'can-i',
        'list',
        'pods',
        '-n',
        ns,
        '--as',
        `system:serviceaccount:${beta}:${inBeta.body.grantId}`,
      ]).stdout.trim();
    expect(can(beta)).toBe('yes');
    expect(can(alpha)).toBe('no');
  });

  test('is refused by the API server in a namespace the policy names but the RBAC does not', async () => {
    const r = await exchange(outsider, 'viewer');
    expect(r.status).not.toBe(200);
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(managedObjects([outsider])).toEqual([]);
  });

  test('holds nothing beyond the policy: no bind of other roles, nothing in other namespaces', () => {
    const can = (...args: string[]) => kubectl(rbac.kubeconfigPath, ['auth', 'can-i', ...args]).stdout.trim();
    expect(can('bind', 'clusterroles/k8s-ea-viewer', '-n', alpha)).toBe('yes');
    expect(can('bind', 'clusterroles/k8s-ea-deployer', '-n', alpha)).toBe('no');
    expect(can('bind', 'clusterroles/k8s-ea-viewer', '-n', beta)).toBe('no');
    expect(can('list', 'pods', '-n', beta)).toBe('yes');
    expect(can('list', 'pods', '-n', alpha)).toBe('no');
    expect(can('create', 'serviceaccounts', '-n', outsider)).toBe('no');
    // (installBrokerRbac's deploy/ role reader also lets it read the example roles; the generated one
    // names only what this policy grants.)
    const reader = JSON.parse(kubectlAdmin(['get', 'clusterrole', `${NAME}-role-reader`, '-o', 'json'])) as {
      rules: { resourceNames: string[] }[];
    };
    expect(reader.rules.map((r) => r.resourceNames)).toEqual([['k8s-ea-viewer']]);
  });
});

describe('rbac check', () => {
  test('the cluster matches the policy it was generated from, and lacks what the wider policy needs', async () => {
    expect(await check(policyAB)).toEqual({ code: 0, matches: true, drift: [] });
    const wider = await check(policyABC);
    expect(wider.code).toBe(1);
    expect(wider.drift).toEqual(
      expect.arrayContaining([
        { kind: 'missing', object: `Role ${outsider}/${NAME}`, detail: '' },
        { kind: 'missing', object: `RoleBinding ${outsider}/${NAME}`, detail: '' },
      ]),
    );
  });

  test('finds a drift: a verb added, a bind removed, a binding in another namespace', async () => {
    const role = JSON.parse(kubectlAdmin(['-n', alpha, 'get', 'role', NAME, '-o', 'json'])) as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    const rules = role.rules
      // The bind on the named ClusterRoles (the shared self-revoke Role's bind stays).
      .filter((r) => !(r.verbs.includes('bind') && r.resources.includes('clusterroles')))
      .map((r) => (r.resources.includes('serviceaccounts') ? { ...r, verbs: [...r.verbs, 'patch'] } : r));
    kubectlAdmin(['-n', alpha, 'patch', 'role', NAME, '--type', 'merge', '-p', JSON.stringify({ rules })]);
    kubectlAdmin([
      '-n',
      outsider,
      'create',
      'rolebinding',
      'stray',
      '--clusterrole',
      'k8s-ea-viewer',
      '--serviceaccount',
      `${rbac.brokerNamespace}:${rbac.serviceAccount}`,
    ]);
    const drifted = await check(policyAB);
    expect(drifted.code).toBe(1);
    expect(drifted.drift).toEqual([
      {
        kind: 'missing',
        object: `Role ${alpha}/${NAME}`,
        detail: 'bind clusterroles.rbac.authorization.k8s.io/k8s-ea-viewer',
      },
      { kind: 'extra', object: `Role ${alpha}/${NAME}`, detail: 'patch serviceaccounts' },
      {
        kind: 'extra',
        object: `RoleBinding ${outsider}/stray`,
        detail: 'binds the broker in a namespace the policy does not grant',
      },
    ]);
    const text = await cli(['rbac', 'check', policyAB, '--kubeconfig', adminKubeconfigPath(), ...identity]);
    expect(text.stdout).toContain(
      `missing Role ${alpha}/${NAME}: bind clusterroles.rbac.authorization.k8s.io/k8s-ea-viewer\n`,
    );
  });

  test('a cluster that cannot be read: exit 3', async () => {
    const unreachable = files.write(
      'unreachable.kubeconfig',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
        users: [{ name: 'u', user: { token: 'x' } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    const run = await cli(['rbac', 'check', policyAB, '--kubeconfig', unreachable]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^rbac check: cannot read the cluster's RBAC/);
  });
});

describe('policy check --kubeconfig', () => {
  const withRole = (clusterRole: string) =>
    files.write(
      `${uniqueName('policy')}.yaml`,
      policyYaml({ namespaces: [alpha], roles: { app: { clusterRole } }, rules: [{ roles: ['app'] }] }),
    );
  const vet = (file: string) => cli(['policy', 'check', file, '--kubeconfig', adminKubeconfigPath()]);

  test('vets the named roles as the broker does before it listens', async () => {
    const good = await vet(policyAB);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('valid, named roles vetted');
    const ghost = uniqueName('k8s-ea-test-ghost');
    const missing = await vet(withRole(ghost));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`ClusterRole "${ghost}": does not exist`);
    const aggregated = await vet(withRole('view'));
    expect(aggregated.code).toBe(1);
    expect(aggregated.stderr).toContain('ClusterRole "view": has an aggregationRule');
  });

  test('a role it may not read is no answer (exit 3), not a verdict', async () => {
    const run = await cli(['policy', 'check', policyAB, '--kubeconfig', rbac.kubeconfigPath, '--json']);
    // The broker's own identity may read k8s-ea-viewer (deploy/'s role reader): vetted.
    expect(run.code).toBe(0);
    const hidden = await cli([
      'policy',
      'check',
      withRole(uniqueName('k8s-ea-test-unreadable')),
      '--kubeconfig',
      rbac.kubeconfigPath,
    ]);
    expect(hidden.code).toBe(3);
    expect(hidden.stderr).toContain('cannot be read (HTTP 403');
  });
});
