// Edge mode in the Helm chart (values `edge`) and in deploy/edge/, with the pinned helm and the real
// kubectl kustomize: the chart lints and renders the edge (its config, pinned CA and pins from a Secret, no
// ServiceAccount token, no Kubernetes credential), the edge's Service is the only public one, the broker's
// config is one the broker accepts with no public listener, its NetworkPolicy admits nothing but the
// metrics scraper, and deploy/edge/ (a kustomize component over deploy/) renders the same objects. The server-side dry run against the control
// plane: edge-chart-dry-run.cluster.test.ts.
import { beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parseConfig } from '../../src/broker/config/load-config.js';
import { parseEdgeConfig } from '../../src/broker/edge-relay/edge-config.js';
import { repoRoot } from '../../test/support/repo-root.js';
import {
  CHART,
  ensureHelm,
  helm,
  kustomize,
  podSpecOf,
  renderChart,
  type Doc,
} from '../broker/deploy/support/chart.js';
import { EDGE_VALUES } from './support/edge-values.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDoc = Doc & { spec: any; data?: Record<string, string> };
const find = (docs: Doc[], kind: string, name: string): AnyDoc | undefined =>
  docs.find((d) => d.kind === kind && d.metadata.name === name) as AnyDoc | undefined;
const must = (docs: Doc[], kind: string, name: string): AnyDoc => {
  const d = find(docs, kind, name);
  if (!d) throw new Error(`no ${kind} ${name} in the rendering`);
  return d;
};
/** deploy/ with the deploy/edge/ component, as an operator's overlay uses them. */
const EDGE_DIR = join(repoRoot, 'examples', 'admin', 'edge-overlay');
const edgeValues = () => load(readFileSync(EDGE_VALUES, 'utf8')) as { edge: Record<string, unknown> };
const PIN = 'cFIJo3AdXzg7X3fWgrLWLLZiiv2HiGNxFyp5HkhMaMo=';

/** A pod spec with kustomize's hash suffix taken off its ConfigMap volumes, and no pull policy. */
function plainPod(docs: Doc[], name: string): Record<string, unknown> {
  const spec = podSpecOf(docs.filter((d) => d.kind === 'Deployment' && d.metadata.name === name)).spec;
  for (const v of spec.volumes)
    if (v.configMap) v.configMap.name = v.configMap.name.replace(/-[a-z0-9]{10}$/, '');
  for (const c of spec.containers) delete c.imagePullPolicy;
  return spec;
}

/** Runs `fn` with the files a rendered config names written under a temporary directory. */
function withMounts<T>(files: string[], fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-edge-chart-'));
  try {
    for (const f of files) writeFileSync(join(dir, f), f === 'pins' ? `${PIN}\n` : 'x');
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The broker's config from a rendering, parsed as the broker parses it (mount paths moved to a temp dir). */
function brokerConfigOf(text: string) {
  return withMounts(['policy.yaml', 'tls.crt', 'tls.key', 'ca.crt'], (dir) =>
    parseConfig(
      text.replace(/\/etc\/k8s-ea(-tls|-edge-client)?\//g, `${dir}/`),
      join(dir, 'broker-config.yaml'),
    ),
  );
}

beforeAll(ensureHelm, 900_000);

describe('the chart in edge mode', () => {
  test('lints, and refuses what it cannot honour', () => {
    const lint = helm(['lint', '--strict', '--kube-version', '1.30.0', CHART, '-f', EDGE_VALUES]);
    expect(lint.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(lint.status).toBe(0);
    const template = (set: string) =>
      helm(['template', 'x', CHART, '--kube-version', '1.30.0', '-f', EDGE_VALUES, '--set', set]).stderr;
    expect(template('gateway.enabled=false')).toMatch(/edge\.enabled needs gateway\.enabled/);
    expect(template('edge.brokerServerName=')).toMatch(/edge\.brokerServerName is required/);
    expect(template('edge.gatewayServerName=elsewhere.example.com')).toMatch(
      /edge\.gatewayServerName \("elsewhere\.example\.com"\) must be the host of gateway\.url/,
    );
    expect(template('ingress.enabled=true,ingress.hosts[0]=a.example.com')).toMatch(
      /ingress\.enabled needs the broker's Service/,
    );
    expect(template('config.publicListeners=true')).toMatch(/config\.publicListeners is set by the chart/);
    // The values schema: a misspelt key or a wrong type is refused before any template runs.
    expect(template('edge.publicListener=true')).toMatch(/additional properties 'publicListener'/i);
    expect(template('edge.addresses[0]=edge.example.com')).toMatch(/'\/edge\/addresses\/0'.*does not match/);
  });

  test('the broker binds no public port: no Service, probes on the metrics port, a config the broker accepts', () => {
    const docs = renderChart({ values: edgeValues() });
    expect(find(docs, 'Service', 'k8s-ea-broker')).toBeUndefined();
    const publicServices = docs.filter(
      (d) => d.kind === 'Service' && (d as AnyDoc).spec.type !== 'ClusterIP',
    );
    expect(publicServices.map((d) => d.metadata.name)).toEqual(['k8s-ea-edge']);
    const pod = plainPod(docs, 'k8s-ea-broker') as { containers: Record<string, any>[] }; // eslint-disable-line @typescript-eslint/no-explicit-any
    const broker = pod.containers[0]!;
    expect(broker.ports.map((p: { name: string }) => p.name)).toEqual(['metrics']);
    for (const probe of [broker.readinessProbe, broker.livenessProbe])
      expect(probe.httpGet).toMatchObject({ port: 'metrics', scheme: 'HTTP' });
    const config = brokerConfigOf(
      must(docs, 'ConfigMap', 'k8s-ea-broker-config').data!['broker-config.yaml']!,
    );
    expect(config.publicListeners).toBe(false);
    expect(config.edge?.addresses).toEqual([
      { host: 'k8s-ea-edge-tunnel.k8s-ephemeral-access.svc', port: 8500 },
    ]);
    expect(config.gateway?.url).toBe('https://k8s-gateway.example.com');
  });

  test('the edge: its own config, its trust from a Secret, no ServiceAccount token, no Kubernetes credential', () => {
    const docs = renderChart({ values: edgeValues() });
    const pod = plainPod(docs, 'k8s-ea-edge') as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBeUndefined();
    expect(pod.containers[0].args).toEqual(['edge', '--config', '/etc/k8s-ea-edge/edge.yaml']);
    expect(pod.containers[0].env).toBeUndefined();
    const secrets = pod.volumes
      .filter((v: { secret?: unknown }) => v.secret)
      .map((v: any) => v.secret.secretName); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(secrets.sort()).toEqual(['k8s-ea-edge-client-trust', 'k8s-ea-edge-tunnel-tls']);
    // Nothing in the edge's release may read the API server: no RBAC names it, no token is projected.
    for (const d of docs.filter((x) => /Role|ServiceAccount/.test(x.kind)))
      expect(JSON.stringify(d)).not.toContain('k8s-ephemeral-access-edge');
    expect(JSON.stringify(pod)).not.toMatch(/serviceAccountToken|kube-api-access/);
    const text = must(docs, 'ConfigMap', 'k8s-ea-edge-config').data!['edge.yaml']!;
    const edge = withMounts(['tls.crt', 'tls.key', 'ca.crt', 'pins'], (dir) =>
      parseEdgeConfig(text.replace(/\/etc\/k8s-ea-edge[a-z-]*\//g, `${dir}/`), join(dir, 'edge.yaml')),
    );
    expect([...edge.routes]).toEqual([
      ['k8s-broker.example.com', 'broker'],
      ['k8s-gateway.example.com', 'gateway'],
    ]);
    expect(edge.tunnel.clientKeySha256).toEqual([PIN]);
  });

  test("the broker's NetworkPolicy: no ingress but the metrics scraper, egress to the edge's tunnel", () => {
    const docs = renderChart({ values: edgeValues() });
    const np = must(docs, 'NetworkPolicy', 'k8s-ea-broker').spec;
    expect(np.ingress).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        ports: [{ protocol: 'TCP', port: 9090 }],
      },
    ]);
    expect(np.egress).toContainEqual({
      to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'k8s-ephemeral-access-edge' } } }],
      ports: [{ protocol: 'TCP', port: 8500 }],
    });
    const edgeNp = must(docs, 'NetworkPolicy', 'k8s-ea-edge').spec;
    expect(edgeNp.egress).toEqual([]);
    // With its listeners on, the broker keeps its public ports beside the edge.
    const values = edgeValues();
    const open = renderChart({ values: { ...values, edge: { ...values.edge, publicListeners: true } } });
    expect(must(open, 'NetworkPolicy', 'k8s-ea-broker').spec.ingress[0].ports).toHaveLength(2);
    expect(find(open, 'Service', 'k8s-ea-broker')).toBeDefined();
  });

  test('edges run elsewhere: the brokers dial their addresses, the chart runs no edge', () => {
    const values = edgeValues();
    const docs = renderChart({
      values: {
        ...values,
        edge: { ...values.edge, addresses: ['edge-a.example.com:8500', 'edge-b.example.com:8500'] },
      },
    });
    expect(docs.filter((d) => d.metadata.name.startsWith('k8s-ea-edge'))).toEqual([]);
    const config = brokerConfigOf(
      must(docs, 'ConfigMap', 'k8s-ea-broker-config').data!['broker-config.yaml']!,
    );
    expect(config.edge?.addresses.map((a) => a.host)).toEqual(['edge-a.example.com', 'edge-b.example.com']);
    expect(must(docs, 'NetworkPolicy', 'k8s-ea-broker').spec.egress.at(-1)).toEqual({
      ports: [{ protocol: 'TCP', port: 8500 }],
    });
  });

  test('off by default: nothing of the edge is rendered', () => {
    const docs = renderChart();
    expect(docs.filter((d) => d.metadata.name.startsWith('k8s-ea-edge'))).toEqual([]);
    expect(JSON.stringify(docs)).not.toMatch(/edge-client|publicListeners/);
  });
});

describe('deploy/edge/ renders what the chart renders', () => {
  const chart = () => renderChart({ values: edgeValues() });

  test.each(['k8s-ea-broker', 'k8s-ea-edge'])('the %s pod', (name) => {
    expect(plainPod(kustomize(EDGE_DIR), name)).toEqual(plainPod(chart(), name));
  });

  test('the NetworkPolicies, the Services, and no broker Service', () => {
    const [fromKustomize, fromChart] = [kustomize(EDGE_DIR), chart()];
    for (const name of ['k8s-ea-broker', 'k8s-ea-edge'])
      expect(must(fromKustomize, 'NetworkPolicy', name).spec).toEqual(
        must(fromChart, 'NetworkPolicy', name).spec,
      );
    for (const name of ['k8s-ea-edge', 'k8s-ea-edge-tunnel'])
      expect(must(fromKustomize, 'Service', name).spec).toEqual(must(fromChart, 'Service', name).spec);
    expect(find(fromKustomize, 'Service', 'k8s-ea-broker')).toBeUndefined();
  });

  test("the edge's config and the broker's edge settings", () => {
    const [fromKustomize, fromChart] = [kustomize(EDGE_DIR), chart()];
    const configMap = (docs: Doc[], prefix: string) =>
      docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith(prefix)) as AnyDoc;
    expect(load(configMap(fromKustomize, 'k8s-ea-edge-config').data!['edge.yaml']!)).toEqual(
      load(configMap(fromChart, 'k8s-ea-edge-config').data!['edge.yaml']!),
    );
    const settings = (docs: Doc[]) => {
      const text = configMap(docs, 'k8s-ea-broker-config').data!['broker-config.yaml']!;
      brokerConfigOf(text); // one the broker accepts
      const c = load(text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      return { edge: c.edge, publicListeners: c.publicListeners, gateway: c.gateway, listen: c.listen };
    };
    expect(settings(fromKustomize)).toEqual(settings(fromChart));
  });
});
