// Granted vs used, and shadow mode, on the real API server: a job with the `deployer` role makes a
// known set of calls with the real kubectl through the gateway (apply, get, list, watch, patch,
// delete on ConfigMaps, one refused call); its rule names a shadowRole that allows only reading
// ConfigMaps. The revocation answer carries the usage: each rule of deployer with the calls it
// allowed, the rules never used, the refused call; the shadow role's would-deny calls (the writes)
// are counted in the answer and the metric, and every call still got the API server's answer.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { ExchangeResponse, RevokeResponse } from '../../../src/shared/api.js';
import { renderUsageSummary } from '../../../src/action/usage-summary.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';
import { gatewayKubeconfig, kubectl } from './support/gateway-kubectl.js';

let env: BrokerEnv;
let broker: InProcessBroker;
let dir: string;

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['usage'],
    policy: {
      roles: {
        deployer: { clusterRole: 'k8s-ea-deployer' },
        'configmap-reader': {
          rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
        },
      },
      rules: [{ name: 'deploys', roles: ['deployer'], shadowRole: 'configmap-reader' }],
    },
  });
  broker = await env.startInProcessBroker({ gateway: true });
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-usage-'));
}, 120_000);

afterAll(async () => {
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const wouldDenyMetric = async () => {
  const text = (await broker.metrics.registry.metrics()) as string;
  const line = text.split('\n').find((l) => l.startsWith('k8s_ea_gateway_shadow_would_deny_total{'));
  return Number(line?.split(' ').pop() ?? 0);
};

test('the revocation answer lists the calls per rule, the unused rules, the refused call and the shadow would-deny', async () => {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'deployer' },
  });
  expect(r.status).toBe(200);
  const grant = r.body;
  const kubeconfig = await gatewayKubeconfig(broker, grant, dir);
  const k = (args: string[], input?: string) =>
    kubectl(kubeconfig, ['--cache-dir', join(dir, 'cache'), ...args], input);
  const cm = dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app' }, data: { v: '1' } });
  const steps = [
    await k(['apply', '-f', '-'], cm),
    await k(['get', 'configmap', 'app', '-o', 'name']),
    await k(['get', '--raw', `/api/v1/namespaces/${env.ns}/configmaps?watch=1&timeoutSeconds=1`]),
    await k(['patch', 'configmap', 'app', '-p', '{"data":{"v":"2"}}']),
    await k(['delete', 'configmap', 'app', '--wait=false']),
  ];
  expect(steps.map((s) => s.status)).toEqual([0, 0, 0, 0, 0]);
  const refused = await k(['get', 'secrets', '-o', 'name']);
  expect([refused.status, /forbidden/i.test(refused.stderr)]).toEqual([1, true]);

  const revoked = await broker.request<RevokeResponse>('DELETE', `/v1/grants/${grant.grantId}`, {
    token: grant.token,
  });
  expect(revoked.status).toBe(200);
  const usage = revoked.body.usage!;
  console.log(`usage of one run: ${JSON.stringify(usage)}`);
  const rules = usage.rules!;
  // deployer's four rules (deploy/job-clusterroles.yaml), in order; only the ConfigMap one was used.
  expect(rules.map((u) => [u.rule.resources, u.calls > 0])).toEqual([
    [['deployments', 'replicasets', 'statefulsets'], false],
    [['configmaps', 'services'], true],
    [['pods'], false],
    [['pods/log', 'events'], false],
  ]);
  const used = rules[1]!.used.map((u) => [u.verb, u.resource, u.names]);
  // kubectl apply reads first (404: still allowed), then creates; the wait for the gateway listed.
  expect(used).toEqual(
    expect.arrayContaining([
      ['get', 'configmaps', ['app']],
      ['create', 'configmaps', []],
      ['list', 'configmaps', []],
      ['watch', 'configmaps', []],
      ['patch', 'configmaps', ['app']],
      ['delete', 'configmaps', ['app']],
    ]),
  );
  expect(used).toHaveLength(6);
  // The refused step: kubectl lists Secrets (403), then reads the namespace to explain (403 too).
  expect(usage.refused.map((u) => [u.verb, u.resource, u.calls])).toEqual([
    ['get', 'namespaces', 1],
    ['list', 'secrets', 1],
  ]);
  // Shadow: the writes (create, patch, delete) would be denied; the reads would not, nor discovery
  // (every authenticated user may, whatever the role).
  const wouldDeny = usage.shadow!.wouldDeny.map((u) => u.verb).sort();
  expect(usage.shadow!.role).toBe('configmap-reader');
  expect(wouldDeny).toEqual(['create', 'delete', 'patch']);
  expect(usage.shadow!.wouldDenyCalls).toBe(3);
  expect(usage.unmatched.map((u) => [u.verb, u.resource])).toEqual([['get', '']]);
  expect(await wouldDenyMetric()).toBe(usage.shadow!.wouldDenyCalls);
  expect(broker.logLines.filter((l) => l.msg === 'shadow role would deny')).toHaveLength(
    usage.shadow!.wouldDenyCalls,
  );
  // Never a token in what goes to the job summary.
  const summary = renderUsageSummary(usage);
  expect(summary).not.toContain(grant.token);
  expect(summary).toMatch(/\*\*never used\*\*/);
  expect(summary).toContain('### Refused (403)');
});
