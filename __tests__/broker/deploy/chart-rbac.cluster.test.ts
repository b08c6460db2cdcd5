// The chart's RBAC for inline roles against the real API server: with the broker's ServiceAccount and
// namespaced RBAC as the chart renders them for a policy with an inline role, the ServiceAccount (by
// impersonation, so the API server's own RBAC escalation check decides) can do what granting that role
// takes: create and update the shared Role k8s-ea-inline-<role> with exactly the role's rules, and bind a
// grant to it. It cannot write a Role with more, nor bind what the policy does not name. Without the inline
// rules in the broker's Role (the chart before it derived them), the shared Role is refused.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { dump } from 'js-yaml';
import { freshNamespace, tryKubectlAdmin } from '../../../test/support/cluster.js';
import { policyYaml } from '../../../test/support/policy.js';
import { ensureHelm, renderChart, withPolicy, type Doc } from './support/chart.js';

let release: { name: string; remove: () => Promise<void> };
let job: { name: string; remove: () => Promise<void> };

beforeAll(async () => {
  ensureHelm();
  release = await freshNamespace('chart-rbac');
  job = await freshNamespace('chart-rbac-job');
}, 900_000);
afterAll(async () => {
  await Promise.all([release?.remove(), job?.remove()]);
});

const INLINE_RULES = [
  { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], resourceNames: ['web'] },
];
const policy = (ns: string) =>
  policyYaml({
    namespaces: [ns],
    roles: { deployer: { clusterRole: 'k8s-ea-deployer' }, 'pod-reader': { rules: INLINE_RULES } },
    rules: [{ name: 'r', roles: ['deployer', 'pod-reader'], maxTtlSeconds: 600 }],
  });

const apply = (docs: unknown[]) =>
  tryKubectlAdmin(['apply', '-f', '-'], docs.map((d) => dump(d)).join('---\n'));
/** kubectl as the broker's ServiceAccount: the API server authorizes (and escalation-checks) it as that. */
const asBroker = (args: string[], doc?: unknown) =>
  tryKubectlAdmin(
    [...args, `--as=system:serviceaccount:${release.name}:k8s-ea-broker`],
    doc === undefined ? undefined : dump(doc),
  );

const sharedRole = (rules: unknown[]) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name: 'k8s-ea-inline-pod-reader', namespace: job.name },
  rules,
});
const binding = (name: string, roleRef: { kind: string; name: string }) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'RoleBinding',
  metadata: { name, namespace: job.name },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...roleRef },
  subjects: [{ kind: 'ServiceAccount', name, namespace: job.name }],
});

/** The broker's namespaced objects of the chart (cluster-scoped ones have fixed names shared by other tests). */
function brokerObjects(docs: Doc[]): Doc[] {
  return docs.filter(
    (d) =>
      (d.kind === 'ServiceAccount' && d.metadata.name === 'k8s-ea-broker') ||
      (['Role', 'RoleBinding'].includes(d.kind) && d.metadata.namespace === job.name),
  );
}

test('a chart-installed broker holds what granting an inline role takes, and no more', () => {
  const docs = brokerObjects(renderChart({ namespace: release.name, values: withPolicy(policy(job.name)) }));
  expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual([
    'Role/k8s-ea-broker',
    'RoleBinding/k8s-ea-broker',
    'ServiceAccount/k8s-ea-broker',
  ]);
  const applied = apply(docs);
  expect(applied.stderr).toBe('');
  expect(applied.status).toBe(0);

  // The shared Role with exactly the policy's rules: created, then rewritten (the broker keeps it equal).
  const created = asBroker(['create', '-f', '-'], sharedRole(INLINE_RULES));
  expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: '' });
  const updated = asBroker(['replace', '-f', '-'], sharedRole([...INLINE_RULES].reverse()));
  expect({ status: updated.status, stderr: updated.stderr }).toEqual({ status: 0, stderr: '' });
  // A grant's RoleBinding to it, and to the named ClusterRole.
  for (const [name, roleRef] of [
    ['gha-inline', { kind: 'Role', name: 'k8s-ea-inline-pod-reader' }],
    ['gha-named', { kind: 'ClusterRole', name: 'k8s-ea-deployer' }],
  ] as const) {
    const bound = asBroker(['create', '-f', '-'], binding(name, roleRef));
    expect({ name, status: bound.status, stderr: bound.stderr }).toEqual({ name, status: 0, stderr: '' });
  }

  // More than the policy's rules: refused by the API server's escalation check.
  const wider = asBroker(['replace', '-f', '-'], {
    ...sharedRole([...INLINE_RULES, { apiGroups: [''], resources: ['pods'], verbs: ['delete'] }]),
  });
  expect(wider.status).not.toBe(0);
  expect(wider.stderr).toMatch(/forbidden.*attempting to grant RBAC permissions not currently held/s);
  // A role the policy does not name: no bind.
  const other = asBroker(['create', '-f', '-'], binding('gha-admin', { kind: 'ClusterRole', name: 'admin' }));
  expect(other.status).not.toBe(0);
  expect(other.stderr).toMatch(/forbidden/i);
});

test("without the inline rules in the broker's Role (the chart before), the shared Role is refused", () => {
  const docs = brokerObjects(renderChart({ namespace: release.name, values: withPolicy(policy(job.name)) }));
  const role = docs.find((d) => d.kind === 'Role')!;
  // The chart's Role minus the inline role's own rules: what the chart rendered from rbac.* values.
  const canonical = (r: object) => JSON.stringify(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
  const inlineRules = new Set(INLINE_RULES.map(canonical));
  const narrowed = {
    ...role,
    rules: (role.rules as Record<string, unknown>[]).filter((r) => !inlineRules.has(canonical(r))),
  };
  expect((narrowed.rules as unknown[]).length).toBe((role.rules as unknown[]).length - INLINE_RULES.length);
  expect(apply([narrowed]).status).toBe(0);
  const refused = asBroker(['replace', '-f', '-'], sharedRole(INLINE_RULES));
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toMatch(/attempting to grant RBAC permissions not currently held/);
});
