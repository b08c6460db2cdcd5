// The Helm chart and the kustomize bases rendered for the deploy/ suites, and the RBAC of a rendering
// reduced to what authorizes (kind, namespace, name → rules, roleRef, subjects).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { rbacJobNamespaces, readDeployDocs } from '../../../../test/support/deploy-rbac.js';
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

const parse = (text: string): Doc[] => (loadAll(text) as (Doc | null)[]).filter((d): d is Doc => d !== null);

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

/** Chart values saying what deploy/job-namespace-rbac.yaml says: its namespaces and the names it binds. */
export function valuesMatchingDeploy(): Record<string, unknown> {
  const docs = readDeployDocs('job-namespace-rbac.yaml');
  const bound = (resource: string, namespace?: string) => [
    ...new Set(
      docs
        .filter((d) => namespace === undefined || d.metadata.namespace === namespace)
        .flatMap((d) =>
          ((d.rules ?? []) as { resources: string[]; verbs: string[]; resourceNames?: string[] }[])
            .filter((r) => r.resources.includes(resource) && r.verbs.includes('bind'))
            .flatMap((r) => r.resourceNames ?? []),
        ),
    ),
  ];
  const jobNamespaces = rbacJobNamespaces();
  return {
    jobNamespaces,
    rbac: {
      clusterRoles: bound('clusterroles'),
      roles: bound('roles'),
      namespaces: Object.fromEntries(
        jobNamespaces.map((ns) => [
          ns,
          { clusterRoles: bound('clusterroles', ns), roles: bound('roles', ns) },
        ]),
      ),
    },
  };
}
