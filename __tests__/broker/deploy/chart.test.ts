// The Helm chart (deploy/chart/k8s-ephemeral-access) with the pinned helm (scripts/helm.mjs builds it from
// its Go module): it lints, renders, its broker config and policy are ones the broker accepts, its RBAC is
// rule for rule the kustomize base's, and its copies of deploy/ files are equal to them. The server-side
// dry run against the control plane: chart-dry-run.cluster.test.ts.
import { beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parseConfig } from '../../../src/broker/config/load-config.js';
import { parsePolicy } from '../../../src/broker/policy/index.js';
import { readDeployDocs } from '../../../test/support/deploy-rbac.js';
import { policyYaml, type PolicySpec } from '../../../test/support/policy.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import {
  CHART,
  ensureHelm,
  generatedRbac,
  helm,
  kustomize,
  podSpecOf,
  rbacOf,
  renderChart,
  withPolicy,
  type Doc,
} from './support/chart.js';

/** deploy/'s example policy, and one with every role form: a named ClusterRole, a named Role, inline rules. */
const EXAMPLE_POLICY = readFileSync(join(repoRoot, 'deploy', 'examples', 'policy.yaml'), 'utf8');
const ROLE_FORMS: PolicySpec['roles'] = {
  deployer: { clusterRole: 'k8s-ea-deployer' },
  reader: { role: 'ci-reader' },
  'pod-reader': {
    rules: [
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], resourceNames: ['web'] },
    ],
  },
};
/** Two rules over three namespaces; the first binds `firstRoles`. */
const formsPolicy = (firstRoles: string[]) =>
  policyYaml({
    namespaces: ['team-c'],
    roles: ROLE_FORMS,
    rules: [
      {
        name: 'a',
        match: { repository_id: '2' },
        namespaces: ['team-b', 'team-a'],
        roles: firstRoles,
        maxTtlSeconds: 600,
      },
      { name: 'b', match: { repository_id: '3' }, roles: ['pod-reader'], maxTtlSeconds: 600 },
    ],
  });
const EVERY_FORM_POLICY = formsPolicy(['pod-reader', 'deployer', 'reader']);
const INLINE_ONLY_POLICY = formsPolicy(['pod-reader']);
/** The chart's default values' policy. */
const DEFAULT_POLICY = (load(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { policy: string }).policy;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const find = (docs: Doc[], kind: string, name?: string): Doc & { spec: any; data?: Record<string, string> } =>
  docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name)) as never;

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
    const policyText = find(docs, 'ConfigMap', 'k8s-ea-broker-policy').data!['policy.yaml']!;
    const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-chart-'));
    try {
      writeFileSync(join(dir, 'policy.yaml'), policyText);
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
      expect(parsePolicy(policyText, 'policy.yaml').namespaces()).toEqual(['staging']);
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

describe("the broker's RBAC, derived from the policy", () => {
  /** The chart's policy-dependent RBAC (not the lease Role and TokenReview binding, nor the example job roles). */
  const policyRbac = (docs: Doc[]) =>
    rbacOf(
      docs.filter(
        (d) =>
          d.metadata.name.startsWith('k8s-ea-broker') &&
          !/^k8s-ea-broker-(lease|tokenreview|self-revoke-guard)$/.test(d.metadata.name),
      ),
    );

  test.each([
    ["the chart's default policy", DEFAULT_POLICY],
    ["deploy/'s example policy", EXAMPLE_POLICY],
    ['a policy with a named ClusterRole, a named Role and an inline role', EVERY_FORM_POLICY],
    ['a policy with inline roles only', INLINE_ONLY_POLICY],
  ])('%s: rule for rule what `rbac generate` prints for it', (_name, policy) => {
    const fromChart = policyRbac(renderChart({ values: withPolicy(policy) }));
    const fromCli = rbacOf(generatedRbac(policy));
    expect(Object.keys(fromChart).sort()).toEqual(Object.keys(fromCli).sort());
    expect(fromChart).toEqual(fromCli);
  });

  test('an inline role: the broker may create, update and bind its shared Role, and holds its rules', () => {
    const role = find(renderChart({ values: withPolicy(EVERY_FORM_POLICY) }), 'Role', 'k8s-ea-broker');
    const rules = role.rules as { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    const on = (verb: string) =>
      rules
        .filter((r) => r.resources.includes('roles') && r.verbs.includes(verb))
        .flatMap((r) => r.resourceNames ?? ['*']);
    // The shared self-revoke Role is updated in every job namespace, whatever the policy.
    expect(on('update')).toEqual(['k8s-ea-self-revoke', 'k8s-ea-inline-pod-reader']);
    expect(on('bind')).toEqual(expect.arrayContaining(['ci-reader', 'k8s-ea-inline-pod-reader']));
    expect(on('create')).toEqual(['*']);
    expect(rules).toEqual(
      expect.arrayContaining([
        { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], resourceNames: ['web'] },
      ]),
    );
  });

  test('a policy without named ClusterRoles gets no ClusterRole rule at all (an empty resourceNames means all)', () => {
    const docs = renderChart({ values: withPolicy(INLINE_ONLY_POLICY) });
    expect(docs.find((d) => d.metadata.name === 'k8s-ea-broker-role-reader')).toBeUndefined();
    for (const d of docs.filter((x) => x.metadata.name.startsWith('k8s-ea-broker')))
      for (const rule of (d.rules ?? []) as {
        verbs: string[];
        resources: string[];
        resourceNames?: string[];
      }[])
        if (
          rule.resources.some((r) => r === 'clusterroles' || r === 'roles') &&
          rule.verbs.some((v) => ['bind', 'watch', 'update'].includes(v))
        )
          expect(rule.resourceNames?.length).toBeGreaterThan(0);
  });
});

describe('installs that hot-reload the policy and drain on a rolling update', () => {
  const checksum = (docs: Doc[]) =>
    find(docs, 'Deployment').spec.template.metadata.annotations['checksum/config'] as string;

  test('chart: a policy change updates its own ConfigMap and leaves the pods alone; a config change rolls them', () => {
    const before = renderChart();
    const policyChanged = renderChart({ values: withPolicy(EXAMPLE_POLICY) });
    const configChanged = renderChart({ set: 'config.leewaySeconds=10' });
    expect(checksum(policyChanged)).toBe(checksum(before));
    expect(find(policyChanged, 'ConfigMap', 'k8s-ea-broker-policy').data!['policy.yaml']).toBe(
      EXAMPLE_POLICY,
    );
    expect(find(policyChanged, 'ConfigMap', 'k8s-ea-broker-config')).toEqual(
      find(before, 'ConfigMap', 'k8s-ea-broker-config'),
    );
    expect(checksum(configChanged)).not.toBe(checksum(before));
    // The CA files the config names are read at start too: a change rolls the pods.
    expect(checksum(renderChart({ set: 'clusterCa=PEM' }))).not.toBe(checksum(before));
  });

  test('kustomize: the policy ConfigMap keeps its name (updated in place), the config one is renamed on change', () => {
    const docs = kustomize(join(repoRoot, 'deploy'));
    const names = docs.filter((d) => d.kind === 'ConfigMap').map((d) => d.metadata.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'k8s-ea-broker-policy',
        expect.stringMatching(/^k8s-ea-broker-config-[a-z0-9]{10}$/),
      ]),
    );
    const config = find(
      docs,
      'ConfigMap',
      names.find((n) => n.startsWith('k8s-ea-broker-config'))!,
    );
    expect(Object.keys(config.data!)).toEqual(['broker-config.yaml']);
    expect(Object.keys(find(docs, 'ConfigMap', 'k8s-ea-broker-policy').data!)).toEqual(['policy.yaml']);
  });

  test.each([
    ['chart', () => renderChart()],
    ['kustomize', () => kustomize(join(repoRoot, 'deploy'))],
  ])(
    '%s: config and policy share one mounted directory, the one the config names the policy file in',
    (_name, render) => {
      const docs = render();
      const pod = find(docs, 'Deployment').spec.template.spec;
      const volume = pod.volumes.find((v: { name: string }) => v.name === 'config');
      expect(
        volume.projected.sources.map((s: { configMap: { name: string } }) =>
          s.configMap.name.replace(/-[a-z0-9]{10}$/, ''),
        ),
      ).toEqual(['k8s-ea-broker-config', 'k8s-ea-broker-policy']);
      const mount = pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'config');
      expect(pod.containers[0].args).toEqual(['--config', `${mount.mountPath}/broker-config.yaml`]);
      const configMap = docs.find(
        (d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('k8s-ea-broker-config'),
      )! as Doc & { data: Record<string, string> };
      const config = load(configMap.data['broker-config.yaml']!) as { policyFile: string };
      expect(config.policyFile).toBe('policy.yaml');
    },
  );

  test.each([
    ['chart', () => renderChart()],
    ['kustomize', () => kustomize(join(repoRoot, 'deploy'))],
  ])(
    '%s: preStop keeps the pod serving while it leaves the endpoints, and the grace period covers it and the drain',
    (_name, render) => {
      const pod = find(render(), 'Deployment').spec.template.spec;
      const preStop = pod.containers[0].lifecycle.preStop.sleep.seconds as number;
      expect(preStop).toBeGreaterThanOrEqual(5);
      // The broker's default shutdownGraceMs (10 s) for requests in flight after SIGTERM.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop + 10 + 1);
    },
  );

  test('the chart refuses a grace period too short for the preStop sleep and the drain', () => {
    const r = helm([
      'template',
      'x',
      CHART,
      '--kube-version',
      '1.30.0',
      '--set',
      'config.shutdownGraceMs=30000',
    ]);
    expect(r.stderr).toMatch(/drain\.terminationGracePeriodSeconds \(30\) must be at least .* \(36\)/);
    const longer = renderChart({
      set: 'config.shutdownGraceMs=30000,drain.terminationGracePeriodSeconds=40',
    });
    expect(find(longer, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(40);
  });
});

describe('exposure, scheduling and the NetworkPolicy, from values', () => {
  test('a LoadBalancer limited to the runners, with annotations, or an Ingress to the HTTPS port', () => {
    const docs = renderChart({
      values: {
        service: {
          type: 'LoadBalancer',
          annotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing' },
          loadBalancerSourceRanges: ['203.0.113.0/24'],
          externalTrafficPolicy: 'Local',
        },
        ingress: {
          enabled: true,
          className: 'nginx',
          hosts: ['k8s-access.example.com'],
          annotations: { a: 'b' },
        },
      },
    });
    const svc = find(docs, 'Service', 'k8s-ea-broker');
    expect(svc.spec).toMatchObject({
      type: 'LoadBalancer',
      loadBalancerSourceRanges: ['203.0.113.0/24'],
      externalTrafficPolicy: 'Local',
    });
    expect(svc.metadata).toMatchObject({
      annotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing' },
    });
    const ing = find(docs, 'Ingress', 'k8s-ea-broker');
    expect(ing.spec.ingressClassName).toBe('nginx');
    expect(ing.spec.rules[0]).toEqual({
      host: 'k8s-access.example.com',
      http: {
        paths: [
          {
            path: '/',
            pathType: 'Prefix',
            backend: { service: { name: 'k8s-ea-broker', port: { name: 'https' } } },
          },
        ],
      },
    });
    // Off by default: a ClusterIP Service and no Ingress.
    const off = renderChart();
    expect(find(off, 'Service', 'k8s-ea-broker').spec.type).toBe('ClusterIP');
    expect(off.find((d) => d.kind === 'Ingress')).toBeUndefined();
    expect(
      helm(['template', 'x', CHART, '--kube-version', '1.30.0', '--set', 'ingress.enabled=true']).stderr,
    ).toMatch(/ingress\.hosts is required/);
  });

  test('fixed node ports for a NodePort Service (https and the gateway), none for a ClusterIP', () => {
    const gateway = { enabled: true, url: 'https://198.51.100.7:30444' };
    const ports = { https: 30443, gateway: 30444 };
    const docs = renderChart({ values: { service: { type: 'NodePort', nodePorts: ports }, gateway } });
    const byName = (d: Doc[]) =>
      Object.fromEntries(
        (find(d, 'Service', 'k8s-ea-broker').spec.ports as { name: string; nodePort?: number }[]).map((p) => [
          p.name,
          p.nodePort,
        ]),
      );
    expect(byName(docs)).toEqual(ports);
    // A ClusterIP Service has no node ports: the values are left out rather than refused by the API server.
    expect(byName(renderChart({ values: { service: { nodePorts: ports }, gateway } }))).toEqual({
      https: undefined,
      gateway: undefined,
    });
  });

  test("issuerCa: the broker's Node trusts it besides the public roots (a change rolls the pods); none by default", () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    const docs = renderChart({ values: { issuerCa: pem } });
    expect(find(docs, 'ConfigMap', 'k8s-ea-broker-config').data!['issuer-ca.crt']).toBe(`${pem}\n`);
    const env = podSpecOf(docs).spec.containers[0].env as { name: string; value?: string }[];
    expect(env).toContainEqual({ name: 'NODE_EXTRA_CA_CERTS', value: '/etc/k8s-ea/issuer-ca.crt' });
    const annotation = (d: Doc[]) =>
      find(d, 'Deployment').spec.template.metadata.annotations['checksum/config'] as string;
    const plain = renderChart();
    expect(annotation(docs)).not.toBe(annotation(plain));
    expect(find(plain, 'ConfigMap', 'k8s-ea-broker-config').data!['issuer-ca.crt']).toBeUndefined();
    const plainEnv = podSpecOf(plain).spec.containers[0].env as { name: string }[];
    expect(plainEnv.map((e) => e.name)).not.toContain('NODE_EXTRA_CA_CERTS');
  });

  test('nodeSelector, tolerations, affinity, topologySpreadConstraints, priorityClassName, pod annotations, pull secrets', () => {
    const values = {
      nodeSelector: { pool: 'system' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
          },
        },
      },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'DoNotSchedule',
          labelSelector: { matchLabels: { x: 'y' } },
        },
      ],
      priorityClassName: 'system-cluster-critical',
      podAnnotations: { 'example.com/team': 'platform' },
      imagePullSecrets: [{ name: 'regcred' }],
    };
    const dep = find(renderChart({ values }), 'Deployment');
    const { annotations } = dep.spec.template.metadata;
    expect(dep.spec.template.spec).toMatchObject({
      nodeSelector: values.nodeSelector,
      tolerations: values.tolerations,
      affinity: values.affinity,
      topologySpreadConstraints: values.topologySpreadConstraints,
      priorityClassName: values.priorityClassName,
      imagePullSecrets: values.imagePullSecrets,
    });
    expect(annotations).toMatchObject({
      'example.com/team': 'platform',
      'checksum/config': expect.any(String),
    });
  });

  test("the API server egress narrowed to its addresses; by default the same NetworkPolicy as deploy/'s", () => {
    const narrowed = find(
      renderChart({ values: { networkPolicy: { apiServerCidrs: ['10.0.0.1/32'] } } }),
      'NetworkPolicy',
    );
    const apiRule = narrowed.spec.egress.find((r: { ports: { port: number }[] }) =>
      r.ports.some((p) => p.port === 6443),
    );
    expect(apiRule.to).toEqual([{ ipBlock: { cidr: '10.0.0.1/32' } }]);
    const chartPolicy = find(
      renderChart({ values: { gateway: { enabled: true, url: 'https://gw.example.com' } } }),
      'NetworkPolicy',
    );
    const deployPolicy = find(kustomize(join(repoRoot, 'deploy')), 'NetworkPolicy');
    expect(chartPolicy.spec).toEqual(deployPolicy.spec);
  });

  test('an image digest pins the image (a released chart carries its own)', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const pod = find(renderChart({ set: `image.digest=${digest}` }), 'Deployment').spec.template.spec;
    expect(pod.containers[0].image).toBe(`ghcr.io/k8s-ephemeral-access/broker@${digest}`);
  });
});

describe('the same broker as deploy/', () => {
  test("its RBAC for deploy/'s example policy equals the kustomize base's plus deploy/job-namespace-rbac.yaml, rule for rule", () => {
    const fromKustomize = rbacOf([
      ...kustomize(join(repoRoot, 'deploy')),
      ...readDeployDocs('job-namespace-rbac.yaml'),
    ]);
    const fromChart = rbacOf(renderChart({ values: withPolicy(EXAMPLE_POLICY) }));
    expect(Object.keys(fromChart).sort()).toEqual(Object.keys(fromKustomize).sort());
    expect(fromChart).toEqual(fromKustomize);
  });

  test("its copies of deploy/'s admission guard, job roles, alert rules and dashboard are equal to them", () => {
    const same = (chartFile: string, deployFile: string) =>
      expect(readFileSync(join(CHART, 'files', chartFile), 'utf8')).toBe(
        readFileSync(join(repoRoot, 'deploy', deployFile), 'utf8'),
      );
    same('admission-guard.yaml', 'admission-guard.yaml');
    same('self-revoke-guard.yaml', 'self-revoke-guard.yaml');
    same('job-clusterroles.yaml', 'job-clusterroles.yaml');
    same('grafana-dashboard.json', 'monitoring/grafana-dashboard.json');
    const rule = (docs: Doc[]) => docs.find((d) => d.kind === 'PrometheusRule')!.spec;
    expect(rule(renderChart({ set: 'monitoring.prometheusRule.enabled=true' }))).toEqual(
      rule(kustomize(join(repoRoot, 'deploy', 'monitoring'))),
    );
  });

  test('the Deployment is the same pod as deploy/ runs', () => {
    // deploy/ lists the gateway's port (used only in gateway mode); the chart renders it only then.
    const withGateway = renderChart({
      values: { gateway: { enabled: true, url: 'https://gw.example.com' } },
    });
    const strip = (p: ReturnType<typeof podSpecOf>) => {
      delete p.spec.containers[0].imagePullPolicy;
      return p;
    };
    expect(strip(podSpecOf(withGateway))).toEqual(strip(podSpecOf(kustomize(join(repoRoot, 'deploy')))));
  });
});
