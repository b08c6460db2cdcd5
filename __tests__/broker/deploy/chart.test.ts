// The Helm chart (deploy/chart/k8s-ephemeral-access) with the pinned helm (scripts/helm.mjs builds it from
// its Go module): it lints, renders, its broker config and policy are ones the broker accepts, its RBAC is
// rule for rule the kustomize base's, and its copies of deploy/ files are equal to them. The server-side
// dry run against the control plane: chart-dry-run.test.ts.
import { beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parseConfig } from '../../../src/broker/config.js';
import { parsePolicy } from '../../../src/broker/policy/index.js';
import { readDeployDocs } from '../../../test/support/deploy-rbac.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import {
  CHART,
  ensureHelm,
  helm,
  kustomize,
  rbacOf,
  renderChart,
  valuesMatchingDeploy,
  type Doc,
} from './support/chart.js';

beforeAll(ensureHelm, 900_000);

describe('helm lint and template', () => {
  test.each([
    ['default values', []],
    [
      'every toggle on',
      [
        '--set',
        'monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,' +
          'monitoring.grafanaDashboard.enabled=true,gateway.enabled=true,gateway.url=https://gw.example.com',
      ],
    ],
  ])('%s: lint passes', (_name, args) => {
    const r = helm(['lint', '--strict', '--kube-version', '1.30.0', CHART, ...args]);
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.status).toBe(0);
  });

  test('renders, and refuses what it cannot honour', () => {
    expect(renderChart().length).toBeGreaterThan(10);
    // The admission guard and the audit join need 1.30.
    expect(helm(['template', 'x', CHART, '--kube-version', '1.29.0']).stderr).toMatch(
      /requires kubeVersion: >=1\.30/,
    );
    expect(
      helm(['template', 'x', CHART, '--kube-version', '1.30.0', '--set', 'gateway.enabled=true']).stderr,
    ).toMatch(/gateway\.url is required/);
    expect(
      helm(['template', 'x', CHART, '--kube-version', '1.30.0', '--set', 'config.brokerNamespace=other'])
        .stderr,
    ).toMatch(/config\.brokerNamespace is set by the chart/);
  });

  test("the broker config and policy it renders are ones the broker accepts, with the values' settings", () => {
    const docs = renderChart({
      set: 'clusterServer=https://k8s.example.com:6443,config.leewaySeconds=10,replicas=3,image.tag=1.2.3',
    });
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'k8s-ea-broker-config')!;
    const data = cm.data as Record<string, string>;
    const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-chart-'));
    try {
      writeFileSync(join(dir, 'policy.yaml'), data['policy.yaml']!);
      for (const f of ['tls.crt', 'tls.key']) writeFileSync(join(dir, f), 'x');
      // Only the TLS mount path differs outside a pod.
      const text = data['broker-config.yaml']!.replaceAll('/etc/k8s-ea-tls/', `${dir}/`);
      const config = parseConfig(text, join(dir, 'broker-config.yaml'));
      expect(config).toMatchObject({
        brokerNamespace: 'k8s-ephemeral-access',
        clusterServer: 'https://k8s.example.com:6443',
        leewaySeconds: 10,
        listen: { port: 8443 },
        internalListen: { host: '0.0.0.0', port: 9090 },
        issuers: [{ issuer: 'https://token.actions.githubusercontent.com' }],
      });
      expect(parsePolicy(data['policy.yaml']!, 'policy.yaml').namespaces()).toEqual(['staging']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const dep = docs.find((d) => d.kind === 'Deployment')! as Doc & { spec: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(dep.spec.replicas).toBe(3);
    const pod = dep.spec.template.spec;
    expect(pod.containers[0].image).toBe('ghcr.io/k8s-ephemeral-access/broker:1.2.3');
    expect(pod.volumes.find((v: { name: string }) => v.name === 'tls').secret).toEqual({
      secretName: 'k8s-ea-broker-tls',
      optional: true,
    });
  });

  test('the gateway section carries the agreed keys, with its port in the Service and NetworkPolicy', () => {
    const docs = renderChart({
      set: 'gateway.enabled=true,gateway.url=https://gw.example.com:8444,gateway.tlsSecretName=gw-tls,gateway.ca=PEM',
    });
    const cm = docs.find((d) => d.metadata.name === 'k8s-ea-broker-config')!;
    const data = cm.data as Record<string, string>;
    expect((load(data['broker-config.yaml']!) as { gateway: unknown }).gateway).toEqual({
      url: 'https://gw.example.com:8444',
      listen: { host: '0.0.0.0', port: 8444 },
      tls: { certFile: '/etc/k8s-ea-gateway-tls/tls.crt', keyFile: '/etc/k8s-ea-gateway-tls/tls.key' },
      caFile: 'gateway-ca.crt',
    });
    expect(data['gateway-ca.crt']).toBe('PEM\n');
    const svc = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'k8s-ea-broker')! as Doc & {
      spec: { ports: { name: string; port: number }[] };
    };
    expect(svc.spec.ports.map((p) => [p.name, p.port])).toEqual([
      ['https', 443],
      ['gateway', 8444],
    ]);
    const np = docs.find((d) => d.kind === 'NetworkPolicy')! as Doc & {
      spec: { ingress: { from?: unknown[]; ports: { port: number }[] }[] };
    };
    const open = np.spec.ingress.filter((r) => !r.from).flatMap((r) => r.ports.map((p) => p.port));
    expect(open).toEqual([8443, 8444]);
    const off = renderChart().find((d) => d.kind === 'Service' && d.metadata.name === 'k8s-ea-broker')!;
    expect(JSON.stringify(off)).not.toContain('gateway');
  });
});

describe('the same broker as deploy/', () => {
  test("its RBAC equals the kustomize base's plus deploy/job-namespace-rbac.yaml, rule for rule", () => {
    const fromKustomize = rbacOf([
      ...kustomize(join(repoRoot, 'deploy')),
      ...readDeployDocs('job-namespace-rbac.yaml'),
    ]);
    const fromChart = rbacOf(renderChart({ values: valuesMatchingDeploy() }));
    expect(Object.keys(fromChart).sort()).toEqual(Object.keys(fromKustomize).sort());
    expect(fromChart).toEqual(fromKustomize);
  });

  test('a policy without named ClusterRoles gets no ClusterRole rule at all (an empty resourceNames means all)', () => {
    const docs = renderChart({ values: { rbac: { clusterRoles: [], roles: [] } } });
    expect(docs.find((d) => d.metadata.name === 'k8s-ea-broker-role-reader')).toBeUndefined();
    // The broker's own roles (the example job roles are what jobs get, not the broker).
    for (const d of docs.filter((x) => x.metadata.name.startsWith('k8s-ea-broker')))
      for (const rule of (d.rules ?? []) as {
        verbs: string[];
        resources: string[];
        resourceNames?: string[];
      }[])
        if (
          rule.resources.some((r) => r === 'clusterroles' || r === 'roles') &&
          (rule.verbs.includes('bind') || rule.verbs.includes('watch'))
        )
          expect(rule.resourceNames?.length).toBeGreaterThan(0);
  });

  test("its copies of deploy/'s admission guard, job roles, alert rules and dashboard are equal to them", () => {
    const same = (chartFile: string, deployFile: string) =>
      expect(readFileSync(join(CHART, 'files', chartFile), 'utf8')).toBe(
        readFileSync(join(repoRoot, 'deploy', deployFile), 'utf8'),
      );
    same('admission-guard.yaml', 'admission-guard.yaml');
    same('job-clusterroles.yaml', 'job-clusterroles.yaml');
    same('grafana-dashboard.json', 'monitoring/grafana-dashboard.json');
    const rule = (docs: Doc[]) => docs.find((d) => d.kind === 'PrometheusRule')!.spec;
    expect(rule(renderChart({ set: 'monitoring.prometheusRule.enabled=true' }))).toEqual(
      rule(kustomize(join(repoRoot, 'deploy', 'monitoring'))),
    );
  });

  test('the Deployment is the same pod as deploy/ runs', () => {
    const pod = (docs: Doc[]) => {
      const dep = docs.find((d) => d.kind === 'Deployment') as Doc & { spec: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
      const spec = JSON.parse(JSON.stringify(dep.spec.template.spec));
      for (const v of spec.volumes) if (v.configMap) v.configMap.name = '(generated)';
      delete spec.containers[0].imagePullPolicy;
      return { replicas: dep.spec.replicas, spec };
    };
    // deploy/ lists the gateway's port (used only in gateway mode); the chart renders it only then.
    const withGateway = renderChart({
      values: { gateway: { enabled: true, url: 'https://gw.example.com' } },
    });
    expect(pod(withGateway)).toEqual(pod(kustomize(join(repoRoot, 'deploy'))));
  });
});
