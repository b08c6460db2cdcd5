// `rbac generate`: the broker's RBAC for exactly the policy's namespaces and roles, and
// deploy/job-namespace-rbac.yaml kept equal to it for the example policy. `rbac check`'s comparison
// of rules, permission by permission. (Both against the real control plane: rbac.cluster.test.ts.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { loadAll } from 'js-yaml';
import { loadPolicy, parsePolicy } from '../../../src/broker/policy/index.js';
import {
  brokerRbacFor,
  DEFAULT_BROKER_IDENTITY,
  type RbacObject,
} from '../../../src/broker/rbac/broker-rbac.js';
import { renderBrokerRbac, yamlScalar } from '../../../src/broker/rbac/render-yaml.js';
import { compareRules } from '../../../src/broker/rbac/drift.js';
import { policyYaml } from '../../../test/support/policy.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import { cli, tempFiles } from './support/cli.js';

const files = tempFiles();
afterAll(() => files.cleanup());

type Doc = {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Record<string, string[]>[];
};
const docsOf = (yaml: string) => (loadAll(yaml) as (Doc | null)[]).filter((d): d is Doc => d !== null);
const ruleFor = (doc: Doc | undefined, resource: string, verb: string) =>
  doc?.rules?.find((r) => r.resources!.includes(resource) && r.verbs!.includes(verb));

test('deploy/job-namespace-rbac.yaml is exactly `rbac generate deploy/examples/policy.yaml`', () => {
  const example = 'deploy/examples/policy.yaml';
  const generated = renderBrokerRbac(
    brokerRbacFor(loadPolicy(join(repoRoot, example))),
    example,
    DEFAULT_BROKER_IDENTITY,
  );
  // If this fails: node build/broker/index.js rbac generate deploy/examples/policy.yaml > deploy/job-namespace-rbac.yaml
  expect(readFileSync(join(repoRoot, 'deploy/job-namespace-rbac.yaml'), 'utf8')).toBe(generated);
});

describe('what is generated', () => {
  const policy = parsePolicy(
    policyYaml({
      namespaces: ['alpha'],
      roles: {
        deployer: { clusterRole: 'k8s-ea-deployer' },
        viewer: { clusterRole: 'k8s-ea-viewer' },
        reader: { role: 'ci-reader' },
        pods: { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
      },
      rules: [
        { name: 'a', roles: ['deployer', 'reader'] },
        { name: 'b', namespaces: ['beta'], roles: ['viewer', 'pods'] },
      ],
    }),
    'policy.yaml',
  );
  const objects = brokerRbacFor(policy, { brokerNamespace: 'brk', serviceAccount: 'sa', name: 'ea' });
  const find = (kind: string, namespace?: string) =>
    objects.find((o) => o.kind === kind && o.namespace === namespace) as RbacObject;

  test('one Role and RoleBinding per policy namespace, a role reader, nothing else', () => {
    expect(objects.map((o) => `${o.kind} ${o.namespace ?? '-'}/${o.name}`)).toEqual([
      'Role alpha/ea',
      'RoleBinding alpha/ea',
      'Role beta/ea',
      'RoleBinding beta/ea',
      'ClusterRole -/ea-role-reader',
      'ClusterRoleBinding -/ea-role-reader',
    ]);
    for (const b of objects.filter((o) => o.kind.endsWith('Binding')))
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'sa', namespace: 'brk' }]);
  });

  test('each namespace may bind exactly the named roles granted there', () => {
    const alpha = find('Role', 'alpha').rules!;
    const beta = find('Role', 'beta').rules!;
    expect(
      alpha.find((r) => r.verbs.includes('bind') && r.resources.includes('clusterroles'))?.resourceNames,
    ).toEqual(['k8s-ea-deployer']);
    // In every namespace: the shared self-revoke Role (direct mode, while its admission guard holds).
    const selfRevoke = [
      expect.objectContaining({ verbs: ['update'], resourceNames: ['k8s-ea-self-revoke'] }),
      expect.objectContaining({ verbs: ['bind'], resourceNames: ['k8s-ea-self-revoke'] }),
    ];
    expect(alpha.filter((r) => r.resources.includes('roles') && r.resourceNames)).toEqual([
      ...selfRevoke,
      expect.objectContaining({ verbs: ['bind'], resourceNames: ['ci-reader'] }),
      expect.objectContaining({ verbs: ['watch'], resourceNames: ['ci-reader'] }),
    ]);
    expect(
      beta.find((r) => r.verbs.includes('bind') && r.resources.includes('clusterroles'))?.resourceNames,
    ).toEqual(['k8s-ea-viewer']);
    // No named Role in beta: its only other Role binds are to the shared Role of its inline role.
    expect(beta.filter((r) => r.resources.includes('roles') && r.resourceNames)).toEqual([
      ...selfRevoke,
      expect.objectContaining({ verbs: ['update'], resourceNames: ['k8s-ea-inline-pods'] }),
      expect.objectContaining({ verbs: ['bind'], resourceNames: ['k8s-ea-inline-pods'] }),
    ]);
    expect(find('ClusterRole').rules).toEqual([
      expect.objectContaining({
        verbs: ['get', 'watch'],
        resourceNames: ['k8s-ea-deployer', 'k8s-ea-viewer'],
      }),
    ]);
  });

  test("an inline role's rules go into the namespaces that grant it, and only there", () => {
    const inline = (rules: RbacObject['rules']) => rules!.filter((r) => r.resources.includes('pods'));
    expect(inline(find('Role', 'beta').rules)).toEqual([
      expect.objectContaining({ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }),
    ]);
    expect(inline(find('Role', 'alpha').rules)).toEqual([]);
    expect(find('Role', 'alpha').rules!.some((r) => r.resourceNames?.includes('k8s-ea-inline-pods'))).toBe(
      false,
    );
  });

  test('never an empty resourceNames list (RBAC reads it as every name): no named role, no bind, no reader', async () => {
    const inlineOnly = files.write(
      'inline.yaml',
      policyYaml({
        namespaces: ['gamma'],
        roles: { pods: { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } },
        rules: [{ roles: ['pods'] }],
      }),
    );
    const run = await cli(['rbac', 'generate', inlineOnly]);
    expect(run.code).toBe(0);
    const docs = docsOf(run.stdout);
    expect(docs.map((d) => d.kind)).toEqual(['Role', 'RoleBinding']);
    expect(ruleFor(docs[0], 'clusterroles', 'bind')).toBeUndefined();
    for (const d of docs)
      for (const r of d.rules ?? []) expect(r.resourceNames ?? ['absent']).not.toEqual([]);
  });

  test('the YAML is what the objects say (names that YAML would misread are quoted)', async () => {
    expect(['on', 'yes', 'null', '123', '1e3', 'a:b', ''].map(yamlScalar)).toEqual([
      '"on"',
      '"yes"',
      '"null"',
      '"123"',
      '"1e3"',
      '"a:b"',
      "''",
    ]);
    const text = renderBrokerRbac(objects, 'policy.yaml', DEFAULT_BROKER_IDENTITY);
    const docs = docsOf(text) as unknown as Record<string, unknown>[];
    expect(docs).toHaveLength(objects.length);
    docs.forEach((doc, i) => {
      const o = objects[i]!;
      expect(doc.kind).toBe(o.kind);
      expect(doc.metadata).toMatchObject({
        name: o.name,
        ...(o.namespace ? { namespace: o.namespace } : {}),
      });
      if (o.rules) expect(doc.rules).toEqual(o.rules.map(({ why: _why, ...rule }) => rule));
      if (o.subjects) expect(doc.subjects).toEqual(o.subjects);
    });
  });

  test('an invalid policy generates nothing: exit 1 with its problems', async () => {
    const broken = files.write(
      'broken.yaml',
      'apiVersion: k8s-ephemeral-access/v1\nkind: Policy\nroles: {}\nrules: []\nextra: 1\n',
    );
    const run = await cli(['rbac', 'generate', broken]);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toContain('extra');
  });
});

describe('comparing rules permission by permission', () => {
  const want = [
    { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['create', 'get'] },
    {
      apiGroups: ['rbac.authorization.k8s.io'],
      resources: ['clusterroles'],
      verbs: ['bind'],
      resourceNames: ['a', 'b'],
    },
  ];

  test('the same permissions written differently are no drift', () => {
    const split = [
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get'] },
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['create'] },
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['clusterroles'],
        verbs: ['bind'],
        resourceNames: ['b', 'a'],
      },
    ];
    expect(compareRules('Role x/y', want, split)).toEqual([]);
  });

  test('a name or verb less is missing, one more is extra, and a wildcard is extra however much it covers', () => {
    const drifted = [
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['create', 'get', 'delete'] },
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['clusterroles'],
        verbs: ['bind'],
        resourceNames: ['a', 'c'],
      },
    ];
    expect(compareRules('Role x/y', want, drifted)).toEqual([
      { kind: 'missing', object: 'Role x/y', detail: 'bind clusterroles.rbac.authorization.k8s.io/b' },
      { kind: 'extra', object: 'Role x/y', detail: 'delete serviceaccounts' },
      { kind: 'extra', object: 'Role x/y', detail: 'bind clusterroles.rbac.authorization.k8s.io/c' },
    ]);
    const wildcard = [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }];
    expect(compareRules('Role x/y', want, wildcard)).toEqual([
      { kind: 'extra', object: 'Role x/y', detail: '* *.*' },
    ]);
  });
});
