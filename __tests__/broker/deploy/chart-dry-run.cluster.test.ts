// The Helm chart and deploy/monitoring/ against the real API server: every object the cluster knows the
// kind of passes a server-side dry run (schema, defaulting, admission). The Prometheus Operator's kinds
// (ServiceMonitor, PrometheusRule) are not installed in the test cluster, so they are checked for shape
// and for what they point at instead.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { freshNamespace, tryKubectlAdmin } from '../../../test/support/cluster.js';
import { policyYaml } from '../../../test/support/policy.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import { ensureHelm, kustomize, renderChart, type Doc } from './support/chart.js';

let release: { name: string; remove: () => Promise<void> };
let job: { name: string; remove: () => Promise<void> };

beforeAll(async () => {
  ensureHelm();
  release = await freshNamespace('chart');
  job = await freshNamespace('chart-job');
}, 900_000);
afterAll(async () => {
  await Promise.all([release?.remove(), job?.remove()]);
});

const OPERATOR_KINDS = ['ServiceMonitor', 'PrometheusRule'];

function dryRun(docs: Doc[]) {
  const yaml = docs.map((d) => dump(d)).join('---\n');
  return tryKubectlAdmin(['apply', '--dry-run=server', '-f', '-'], yaml);
}

test('the chart, every toggle on, passes a server-side dry run', () => {
  const operatorKinds = tryKubectlAdmin(['api-resources', '--api-group=monitoring.coreos.com', '-o', 'name']);
  expect(operatorKinds.stdout.trim()).toBe(''); // not installed here: see the next test
  const docs = renderChart({
    namespace: release.name,
    values: {
      // The broker's RBAC comes from the policy: one rule per role form, in the job namespace.
      policy: policyYaml({
        namespaces: [job.name],
        roles: {
          deployer: { clusterRole: 'k8s-ea-deployer' },
          'pod-reader': {
            rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
          },
        },
        rules: [{ name: 'r', roles: ['deployer', 'pod-reader'], maxTtlSeconds: 600 }],
      }),
      service: {
        type: 'LoadBalancer',
        loadBalancerSourceRanges: ['203.0.113.0/24'],
        externalTrafficPolicy: 'Local',
      },
      ingress: { enabled: true, hosts: ['k8s-access.example.com'] },
      networkPolicy: { apiServerCidrs: ['10.0.0.1/32'] },
      clusterServer: 'https://k8s.example.com:6443',
      gateway: { enabled: true, url: 'https://gw.example.com:8444', tlsSecretName: 'gw-tls' },
      monitoring: {
        serviceMonitor: { enabled: true },
        prometheusRule: { enabled: true },
        grafanaDashboard: { enabled: true },
      },
    },
  });
  const known = docs.filter((d) => !OPERATOR_KINDS.includes(d.kind));
  expect(known.map((d) => d.kind)).toEqual(
    expect.arrayContaining([
      'Deployment',
      'Service',
      'ConfigMap',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'ClusterRole',
      'ClusterRoleBinding',
      'ValidatingAdmissionPolicy',
      'Ingress',
    ]),
  );
  const r = dryRun(known);
  // (kubectl warns, not fails, about shared objects the test set-up created with server-side apply.)
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`deployment.apps/k8s-ea-broker created (server dry run)`);
  expect(r.stdout).toContain(`role.rbac.authorization.k8s.io/k8s-ea-broker created (server dry run)`);
  expect(
    docs
      .filter((d) => OPERATOR_KINDS.includes(d.kind))
      .map((d) => d.kind)
      .sort(),
  ).toEqual([...OPERATOR_KINDS].sort());
});

test('deploy/monitoring/: its core objects pass a dry run; the ServiceMonitor selects the metrics Service', () => {
  const docs = kustomize(join(repoRoot, 'deploy', 'monitoring')).map((d) => ({
    ...d,
    metadata: { ...d.metadata, namespace: release.name },
  }));
  const r = dryRun(docs.filter((d) => !OPERATOR_KINDS.includes(d.kind)));
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const svc = docs.find((d) => d.kind === 'Service')! as Doc & {
    spec: { ports: { name: string }[]; clusterIP: string };
  };
  const sm = docs.find((d) => d.kind === 'ServiceMonitor')! as Doc & {
    spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
  };
  expect(svc.spec.clusterIP).toBe('None');
  expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
  // The public Service must not match: it carries no metrics port.
  const publicService = kustomize(join(repoRoot, 'deploy')).find((d) => d.kind === 'Service')!;
  expect(publicService.metadata.labels).not.toMatchObject(sm.spec.selector.matchLabels);
  expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
  expect(svc.spec.ports.map((p) => p.name)).toEqual(['metrics']);
});
