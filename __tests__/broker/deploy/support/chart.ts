// The Helm chart and the kustomize bases rendered for the deploy/ suites, and the RBAC of a rendering
// reduced to what authorizes (kind, namespace, name → rules, roleRef, subjects).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { parsePolicy } from '../../../../src/broker/policy/index.js';
import { brokerRbacFor, DEFAULT_BROKER_IDENTITY } from '../../../../src/broker/rbac/broker-rbac.js';
import { renderBrokerRbac } from '../../../../src/broker/rbac/render-yaml.js';
import { repoRoot } from '../../../../test/support/repo-root.js';
import { helm } from '../../../../test/support/helm.js';

export { ensureHelm, helm } from '../../../../test/support/helm.js';

export const CHART = join(repoRoot, 'deploy', 'chart', 'k8s-ephemeral-access');

export type Doc = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  rules?: unknown[];
  [k: string]: unknown;
};

export const parse = (text: string): Doc[] =>
  (loadAll(text) as (Doc | null)[]).filter((d): d is Doc => d !== null);

/** `helm template` of the chart: in namespace `namespace`, with these values (a file) and --set. */
export function renderChart(
  o: { namespace?: string; values?: Record<string, unknown>; set?: string } = {},
): Doc[] {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-values-'));
  try {
    const valuesFile = join(dir, 'values.yaml');
    writeFileSync(valuesFile, dump(o.values ?? {}));
    const r = helm([
      'template',
      'k8s-ea',
      CHART,
      '--namespace',
      o.namespace ?? 'k8s-ephemeral-access',
      '--kube-version',
      '1.30.0',
      '-f',
      valuesFile,
      ...(o.set ? ['--set', o.set] : []),
    ]);
    if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
    return parse(r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function kustomize(dir: string): Doc[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr}`);
  return parse(r.stdout);
}

const RBAC_KINDS = ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'];

/** kind/namespace/name → what authorizes; labels and comments aside. */
export function rbacOf(docs: Doc[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const d of docs.filter((x) => RBAC_KINDS.includes(x.kind)))
    out[`${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`] = {
      rules: d.rules,
      roleRef: d.roleRef,
      subjects: d.subjects,
    };
  return out;
}

/** Chart values with this policy text (the chart derives the broker's RBAC from it). */
export const withPolicy = (
  policy: string,
  values: Record<string, unknown> = {},
): Record<string, unknown> => ({
  ...values,
  policy,
});

/** The RBAC `rbac generate` prints for a policy (deploy/job-namespace-rbac.yaml's kind of file). */
export function generatedRbacYaml(policyText: string, brokerNamespace = 'k8s-ephemeral-access'): string {
  const policy = parsePolicy(policyText, 'policy.yaml');
  const id = { ...DEFAULT_BROKER_IDENTITY, brokerNamespace };
  return renderBrokerRbac(brokerRbacFor(policy, id), 'policy.yaml', id);
}

/** The RBAC `rbac generate` prints for a policy, parsed. */
export const generatedRbac = (policyText: string, brokerNamespace = 'k8s-ephemeral-access'): Doc[] =>
  parse(generatedRbacYaml(policyText, brokerNamespace));

/** A pod spec with generated ConfigMap names (kustomize's hash suffix) reduced to the names given. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function podSpecOf(docs: Doc[]): { replicas: number; spec: Record<string, any> } {
  const dep = docs.find((d) => d.kind === 'Deployment') as Doc & { spec: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const spec = JSON.parse(JSON.stringify(dep.spec.template.spec));
  for (const v of spec.volumes)
    for (const source of v.projected?.sources ?? [])
      if (source.configMap) source.configMap.name = source.configMap.name.replace(/-[a-z0-9]{10}$/, '');
  return { replicas: dep.spec.replicas, spec };
}
