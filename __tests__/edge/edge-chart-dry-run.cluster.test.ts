// Edge mode's objects against the real API server: the chart with the edge on (and the broker edge-only),
// and deploy/edge/'s edge objects, pass a server-side dry run (schema, defaulting, admission).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { freshNamespace, tryKubectlAdmin } from '../../test/support/cluster.js';
import { policyYaml } from '../../test/support/policy.js';
import { repoRoot } from '../../test/support/repo-root.js';
import { ensureHelm, kustomize, renderChart, type Doc } from '../broker/deploy/support/chart.js';
import { EDGE_VALUES } from './support/edge-values.js';

let release: { name: string; remove: () => Promise<void> };
let job: { name: string; remove: () => Promise<void> };

beforeAll(async () => {
  ensureHelm();
  release = await freshNamespace('edge-chart');
  job = await freshNamespace('edge-chart-job');
}, 900_000);
afterAll(async () => {
  await Promise.all([release?.remove(), job?.remove()]);
});

function dryRun(docs: Doc[]) {
  return tryKubectlAdmin(['apply', '--dry-run=server', '-f', '-'], docs.map((d) => dump(d)).join('---\n'));
}

test('the chart in edge mode passes a server-side dry run', () => {
  const values = load(readFileSync(EDGE_VALUES, 'utf8')) as Record<string, unknown>;
  const docs = renderChart({
    namespace: release.name,
    values: {
      ...values,
      policy: policyYaml({ namespaces: [job.name] }),
    },
  });
  const r = dryRun(docs);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
  for (const made of [
    'deployment.apps/k8s-ea-edge',
    'service/k8s-ea-edge',
    'service/k8s-ea-edge-tunnel',
    'configmap/k8s-ea-edge-config',
    'networkpolicy.networking.k8s.io/k8s-ea-edge',
    'networkpolicy.networking.k8s.io/k8s-ea-broker',
    'deployment.apps/k8s-ea-broker',
  ])
    expect(r.stdout).toContain(`${made} created (server dry run)`);
  expect(r.stdout).not.toContain('service/k8s-ea-broker ');
});

test("deploy/edge/'s edge objects pass a server-side dry run", () => {
  const docs = kustomize(join(repoRoot, 'examples', 'admin', 'edge-overlay'))
    .filter((d) => /edge/.test(d.metadata.name) || d.kind === 'NetworkPolicy')
    .map((d) => ({ ...d, metadata: { ...d.metadata, namespace: release.name } }));
  expect(docs.map((d) => d.kind).sort()).toEqual(
    ['ConfigMap', 'Deployment', 'NetworkPolicy', 'NetworkPolicy', 'Service', 'Service'].sort(),
  );
  const r = dryRun(docs);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});
