// The control plane runs the controllers a real cluster runs that need no nodes: what a grant applies turns
// into the objects controllers make from it, and built-in roles carry their aggregated rules.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { load } from 'js-yaml';
import type { ExchangeResponse } from '../../src/shared/api.js';
import {
  adminKubeconfigPath,
  coreApi,
  kubectl,
  tokenKubeconfig,
  uniqueName,
  waitFor,
} from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

let env: BrokerEnv;
let jobKubeconfig: { path: string; cleanup: () => void };

// A real grant of the shipped deployer role, exchanged at the broker as a job would.
beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['controllers'], policy: { rules: [{ roles: ['deployer'] }] } });
  const broker = await env.startInProcessBroker();
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'deployer' },
  });
  expect(r.status).toBe(200);
  jobKubeconfig = tokenKubeconfig(r.body.token, env.ns);
});
afterAll(async () => {
  jobKubeconfig?.cleanup();
  await env?.cleanup();
});

const asJob = (args: string[], input?: string) => kubectl(jobKubeconfig.path, args, input);

const manifest = (apiVersion: string, kind: string, name: string, spec: object) => ({
  apiVersion,
  kind,
  metadata: { name },
  spec,
});

const podTemplate = (app: string) => ({
  metadata: { labels: { app } },
  spec: { containers: [{ name: 'c', image: 'registry.invalid/app:1' }] },
});

/** Waits until exactly `n` objects of this kind carry the label selector (listed as admin). */
const waitForCount = (kind: string, selector: string, n: number) =>
  waitFor(`${n} ${kind} with ${selector}`, () => {
    const list = load(
      kubectl(adminKubeconfigPath(), ['-n', env.ns, 'get', kind, '-l', selector, '-o', 'json']).stdout,
    ) as { items: unknown[] };
    return list.items.length === n ? true : undefined;
  });

describe('controllers that need no nodes', () => {
  test('the built-in view ClusterRole carries the rules aggregated into it', async () => {
    const rules = await waitFor('view to be aggregated', () => {
      const r = kubectl(adminKubeconfigPath(), ['get', 'clusterrole', 'view', '-o', 'yaml']);
      const doc = load(r.stdout) as { rules?: { resources?: string[] }[] };
      return doc.rules && doc.rules.length > 0 ? doc.rules : undefined;
    });
    expect(rules.flatMap((r) => r.resources ?? [])).toEqual(expect.arrayContaining(['pods', 'configmaps']));
  });

  test('every namespace gets the kube-root-ca.crt ConfigMap', async () => {
    const cm = await waitFor('kube-root-ca.crt', () =>
      coreApi()
        .readNamespacedConfigMap({ name: 'kube-root-ca.crt', namespace: env.ns })
        .catch(() => undefined),
    );
    expect(cm.data?.['ca.crt']).toMatch(/^-----BEGIN CERTIFICATE-----/);
  });

  test("a grant's Deployment yields a ReplicaSet and Pending Pods; rollout status times out, as without nodes", async () => {
    const app = uniqueName('web');
    const deployment = manifest('apps/v1', 'Deployment', app, {
      replicas: 2,
      selector: { matchLabels: { app } },
      template: podTemplate(app),
    });
    expect(asJob(['apply', '-f', '-'], JSON.stringify(deployment)).status).toBe(0);
    await waitForCount('replicasets', `app=${app}`, 1);
    await waitForCount('pods', `app=${app}`, 2);
    const phases = asJob(['get', 'pods', '-l', `app=${app}`, '-o', 'jsonpath={.items[*].status.phase}']);
    expect(phases.stdout.split(' ')).toEqual(['Pending', 'Pending']);

    const rollout = asJob(['rollout', 'status', `deployment/${app}`, '--timeout=3s']);
    expect(rollout.status).not.toBe(0);
    expect(rollout.stdout).toMatch(
      /Waiting for deployment .* rollout to finish: 0 of 2 updated replicas are available/,
    );
    expect(rollout.stderr).toMatch(/timed out waiting for the condition/);
  });

  test('a Job yields a Pod', async () => {
    const name = uniqueName('once');
    const job = manifest('batch/v1', 'Job', name, {
      template: { ...podTemplate(name), spec: { ...podTemplate(name).spec, restartPolicy: 'Never' } },
    });
    expect(
      kubectl(adminKubeconfigPath(), ['-n', env.ns, 'apply', '-f', '-'], JSON.stringify(job)).status,
    ).toBe(0);
    await waitForCount('pods', `batch.kubernetes.io/job-name=${name}`, 1);
  });

  test("a grant's Service gets an EndpointSlice", async () => {
    const name = uniqueName('svc');
    const svc = manifest('v1', 'Service', name, { selector: { app: name }, ports: [{ port: 80 }] });
    expect(asJob(['apply', '-f', '-'], JSON.stringify(svc)).status).toBe(0);
    await waitForCount('endpointslices', `kubernetes.io/service-name=${name}`, 1);
  });
});
