// `policy advise` in direct mode, from the control plane's own audit log: a grant's calls go
// straight to the API server with the real kubectl, so only the API server's log has them; the
// broker's exchange line names the grant's run, rule and role. The proposal is exactly the calls.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { ExchangeResponse } from '../../../src/shared/api.js';
import { auditLogPath, kubectlStatus, tokenKubeconfig, waitFor } from '../../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';
import { cli } from '../cli/support/cli.js';

let env: BrokerEnv;
let broker: InProcessBroker;

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['advise-direct'],
    policy: { rules: [{ name: 'deploys', roles: ['deployer'] }] },
  });
  broker = await env.startInProcessBroker();
}, 120_000);

afterAll(() => env?.cleanup());

test("the API server's audit log of a direct-mode grant gives the proposal its calls", async () => {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'deployer' },
  });
  expect(r.status).toBe(200);
  const kc = tokenKubeconfig(r.body.token, env.ns);
  try {
    await waitFor('the grant to work', () =>
      kubectlStatus(kc.path, ['get', 'configmaps', '-o', 'name']).ok ? true : undefined,
    );
    expect(kubectlStatus(kc.path, ['create', 'configmap', 'direct-cm']).ok).toBe(true);
    expect(kubectlStatus(kc.path, ['get', 'deployments.apps', '-o', 'name']).ok).toBe(true);
    expect(kubectlStatus(kc.path, ['get', 'secrets'])).toMatchObject({ ok: false, status: 403 });
  } finally {
    kc.cleanup();
  }
  const sa = `system:serviceaccount:${env.ns}:${r.body.grantId}`;
  // The log is written as requests complete: wait for the refused call's line.
  const log = await waitFor('the audit lines of the grant', () => {
    const text = readFileSync(auditLogPath(), 'utf8');
    const mine = text.split('\n').filter((l) => l.includes(sa));
    return mine.some((l) => l.includes('"secrets"') && l.includes('ResponseComplete')) ? mine : undefined;
  });
  const brokerLines = broker.auditLines.map((l) => JSON.stringify(l));
  const advised = await cli(['policy', 'advise', '--json'], [...brokerLines, ...log].join('\n'));
  expect(advised.code).toBe(0);
  const [p, more] = (
    JSON.parse(advised.stdout) as {
      proposals: {
        key: { role: string; policyRule: string };
        rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
        refused: { verb: string; resource: string }[];
      }[];
    }
  ).proposals;
  expect(more).toBeUndefined();
  expect(p!.key).toMatchObject({ role: 'deployer', policyRule: 'deploys' });
  expect(p!.rules.map((x) => [x.apiGroups, x.resources, x.verbs])).toEqual([
    [[''], ['configmaps'], ['create', 'list']],
    [['apps'], ['deployments'], ['list']],
  ]);
  expect(p!.refused.map((x) => [x.verb, x.resource])).toContainEqual(['list', 'secrets']);
});
