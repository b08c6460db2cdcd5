// Which API server addresses handed to runners count as in-cluster ones (a start-up warning and a metric).
import { expect, test } from '@jest/globals';
import { inClusterAddress, reportInClusterAddress } from '../../../src/broker/kube/in-cluster-address.js';
import { createMetrics } from '../../../src/broker/metrics.js';
import { createLogger } from '../../../src/broker/logger.js';

test.each([
  'https://kubernetes.default.svc',
  'https://kubernetes.default.svc:443',
  'https://kubernetes.default.svc.cluster.local',
  'https://kubernetes.default',
  'https://kubernetes',
  'https://api-proxy.infra.svc:6443',
  'https://KUBERNETES.DEFAULT.SVC',
])('%s is in-cluster', (server) => {
  expect(inClusterAddress(server, false)).toMatch(/Service name/);
});

test.each([
  'https://k8s.example.com:6443',
  'https://127.0.0.1:6443',
  'https://203.0.113.7',
  'https://kubernetes.example.com',
  'https://svc.example.com',
  'https://mysvc:6443',
])('%s is not', (server) => {
  expect(inClusterAddress(server, false)).toBeUndefined();
});

test("without clusterServer, the pod's in-cluster configuration is what runners get, whatever the address", () => {
  expect(inClusterAddress('https://10.96.0.1:443', true)).toMatch(/clusterServer is not set/);
});

test('the report is one warning line naming the fix, and the gauge', async () => {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => void lines.push(l) });
  const metrics = createMetrics();
  reportInClusterAddress('https://kubernetes.default.svc', false, logger, metrics);
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({
    level: 'warn',
    server: 'https://kubernetes.default.svc',
    fix: expect.stringContaining('clusterServer'),
  });
  expect(await metrics.registry.getSingleMetricAsString('k8s_ea_cluster_server_in_cluster')).toMatch(
    /^k8s_ea_cluster_server_in_cluster 1$/m,
  );
  reportInClusterAddress('https://k8s.example.com', false, logger, metrics);
  expect(lines).toHaveLength(1);
  expect(await metrics.registry.getSingleMetricAsString('k8s_ea_cluster_server_in_cluster')).toMatch(
    /^k8s_ea_cluster_server_in_cluster 0$/m,
  );
});
