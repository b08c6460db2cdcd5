// The gateway follows the running policy's namespaces: a hot reload that adds a namespace makes
// kubectl through the gateway work there without a restart, and one that drops a namespace ends the
// gateway's acceptance of that namespace's grants. The built broker in gateway mode against the real
// control plane, with the real kubectl on a kubeconfig made of the exchange's answer.
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { ExchangeResponse } from '../../src/shared/api.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { kubectlStatus, waitFor, writeTokenKubeconfig } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';

let env: BrokerEnv;
let broker: RunningBroker;
let dir: string;
/** The namespace the first policy names, and the one a reload adds (the broker's RBAC covers both). */
let first: string;
let added: string;

const policyFor = (namespaces: string[]) => policyYaml({ namespaces, rules: [{ roles: ['deployer'] }] });
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['gw-reload-a', 'gw-reload-b'] });
  [first, added] = env.namespaces as [string, string];
  broker = await env.startBroker({ gateway: true, policyYaml: policyFor([first]) });
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-gw-reload-'));
}, 120_000);

afterAll(async () => {
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Replaces the policy file in one rename, and waits until the broker runs that text. */
async function reloadPolicy(text: string): Promise<void> {
  const next = `${broker.configPath}.policy-next`;
  writeFileSync(next, text);
  renameSync(next, join(broker.configPath, '..', 'policy.yaml'));
  await waitFor('the new policy to run', async () =>
    (await broker.internalGet('/metrics')).text.includes(`k8s_ea_policy_info{sha256="${sha256(text)}"} 1`)
      ? true
      : undefined,
  );
}

async function grantIn(namespace: string): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace, role: 'deployer', ttlSeconds: 600 },
  });
  expect([namespace, r.status]).toEqual([namespace, 200]);
  return r.body;
}

/** The kubeconfig a job would write from the exchange's answer: the gateway's URL, CA and token. */
function kubeconfigOf(grant: ExchangeResponse): string {
  const path = join(dir, `kubeconfig-${grant.grantId}`);
  writeTokenKubeconfig(path, {
    server: grant.server,
    caData: grant.certificateAuthorityData,
    token: grant.token,
    namespace: grant.namespace,
  });
  return path;
}

/** kubectl through the gateway until it works (the grant's watch event may trail the exchange by ms). */
async function kubectlWorks(kubeconfig: string, args: string[]): Promise<void> {
  let last: ReturnType<typeof kubectlStatus> | undefined;
  const worked = await waitFor(
    'kubectl through the gateway to work',
    () => {
      last = kubectlStatus(kubeconfig, args);
      return last.ok ? true : undefined;
    },
    10_000,
    200,
  ).catch(() => false);
  // On failure, kubectl's own words say why (e.g. Unauthorized: the gateway refused the grant).
  expect({ worked, stderr: worked ? '' : last?.stderr }).toEqual({ worked: true, stderr: '' });
}

test('a reload that adds a namespace lets kubectl through the gateway there; one that drops it refuses it', async () => {
  expect(broker.gatewayUrl).toBeDefined();
  const before = await grantIn(first);
  expect(before.server).toBe(broker.gatewayUrl);
  await kubectlWorks(kubeconfigOf(before), ['get', 'configmaps']);

  await reloadPolicy(policyFor([first, added]));
  const grant = await grantIn(added);
  expect(grant.server).toBe(broker.gatewayUrl);
  const kubeconfig = kubeconfigOf(grant);
  await kubectlWorks(kubeconfig, ['create', 'configmap', 'after-reload', '--from-literal=a=b']);
  const read = kubectlStatus(kubeconfig, ['get', 'configmap', 'after-reload', '-o', 'name']);
  expect(read).toMatchObject({ ok: true });
  // Same process: no restart was needed.
  expect(broker.process.exitCode).toBeNull();

  // Dropped again: the namespace's grants are refused at the gateway (401), still without a restart.
  await reloadPolicy(policyFor([first]));
  expect(kubectlStatus(kubeconfig, ['get', 'configmaps'])).toMatchObject({ ok: false, status: 401 });
  await kubectlWorks(kubeconfigOf(before), ['get', 'configmaps']);
});
