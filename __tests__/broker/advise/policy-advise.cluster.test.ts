// `policy advise` from real runs to a role that is proven on the real API server: 20 jobs run the
// same steps with the real kubectl through the gateway (a broker in this process with the broad
// `deployer` role), each with its own object names; their audit lines go to `policy advise`; the
// proposed Role is applied by the admin and granted in place of `deployer` by a second broker;
// then the same job passes under it, and calls the broad role allowed but the runs never made are
// refused by the API server itself.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { ExchangeResponse } from '../../../src/shared/api.js';
import { parsePolicy } from '../../../src/broker/policy/index.js';
import { kubectlAdmin, waitFor } from '../../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';
import { policyYaml } from '../../../test/support/policy.js';
import { cli } from '../cli/support/cli.js';

const RUNS = 20;
const ANY_BRANCH = { ref: ['refs/heads/main', 'refs/heads/release'] };

let env: BrokerEnv;
let broad: InProcessBroker;
let dir: string;

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['advise'],
    policy: { rules: [{ name: 'deploys', roles: ['deployer'], match: ANY_BRANCH }] },
  });
  broad = await env.startInProcessBroker({ gateway: true });
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-advise-'));
  // The Service every run reads by the same name, and one it never reads.
  for (const name of ['web', 'other'])
    kubectlAdmin(['create', 'service', 'clusterip', name, '--tcp=80:80', '-n', env.ns]);
}, 120_000);

afterAll(async () => {
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A kubeconfig for the grant at this broker's gateway, as the action writes it in gateway mode. */
function gatewayKubeconfig(broker: InProcessBroker, grant: ExchangeResponse, run: number): string {
  const path = join(dir, `kubeconfig-${run}`);
  writeFileSync(
    path,
    dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: broker.gateway!.url,
            'certificate-authority-data': broker.ca!.toString('base64'),
          },
        },
      ],
      users: [{ name: 'u', user: { token: grant.token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u', namespace: env.ns } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return path;
}

async function grantAt(broker: InProcessBroker, role: string, run: number): Promise<string> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign({
      run_id: String(7000 + run),
      ref: run % 3 === 0 ? 'refs/heads/release' : 'refs/heads/main',
    }),
    body: { namespace: env.ns, role },
  });
  expect(r.status).toBe(200);
  const kubeconfig = gatewayKubeconfig(broker, r.body, run);
  await waitFor('the gateway to accept the grant', async () =>
    (await kubectl(kubeconfig, ['get', 'configmaps', '-o', 'name'])).status === 0 ? true : undefined,
  );
  return kubeconfig;
}

/** kubectl without blocking this process, where the gateway it talks to runs. */
function kubectl(
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, '--request-timeout=10s', ...args], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
    child.stdin.end(input);
  });
}

const configMap = (name: string) =>
  dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { step: 'deploy' } });

/** The job's steps: [what, kubectl's exit status, its stderr]. Its own names vary by run. */
async function job(kubeconfig: string, run: number): Promise<[string, number | null, string][]> {
  const cm = `release-${run}`;
  // One discovery cache per kubeconfig, as on a runner: discovery is not what is measured here.
  const k = (args: string[], input?: string) =>
    kubectl(kubeconfig, ['--cache-dir', join(dir, 'cache'), ...args], input);
  const steps: [string, string[], string?][] = [
    ['apply', ['apply', '-f', '-'], configMap(cm)],
    ['patch', ['patch', 'configmap', cm, '-p', '{"data":{"step":"patched"}}']],
    ['get service web', ['get', 'service', 'web', '-o', 'name']],
    ['list', ['get', 'configmaps', '-o', 'name']],
    ['watch', ['get', '--raw', `/api/v1/namespaces/${env.ns}/configmaps?watch=1&timeoutSeconds=1`]],
    ['delete', ['delete', 'configmap', cm, '--wait=false']],
    ['refused: list secrets', ['get', 'secrets', '-o', 'name']],
  ];
  const done: [string, number | null, string][] = [];
  for (const [what, args, input] of steps) {
    const r = await k(args, input);
    done.push([what, r.status, r.stderr]);
  }
  return done;
}

const EXPECTED = [
  ['apply', 0],
  ['patch', 0],
  ['get service web', 0],
  ['list', 0],
  ['watch', 0],
  ['delete', 0],
  ['refused: list secrets', 1],
];

test(`policy advise over ${RUNS} runs proposes a Role under which the same job passes and the rest is refused`, async () => {
  for (let run = 1; run <= RUNS; run++) {
    const steps = await job(await grantAt(broad, 'deployer', run), run);
    expect(steps.map(([what, status]) => [what, status])).toEqual(EXPECTED);
    expect(steps[6]![2]).toMatch(/forbidden/i);
  }

  const lines = broad.auditLines.map((l) => JSON.stringify(l)).join('\n');
  const advised = await cli(['policy', 'advise', '--json'], lines);
  expect(advised.code).toBe(0);
  const { proposals } = JSON.parse(advised.stdout) as {
    proposals: {
      runs: number;
      branches: string[];
      rules: {
        apiGroups: string[];
        resources: string[];
        verbs: string[];
        resourceNames?: string[];
        runs: number;
      }[];
      refused: { verb: string; resource: string; calls: number; names: string[] }[];
      manifest: string;
      key: { role: string; policyRule: string };
    }[];
  };
  expect(proposals).toHaveLength(1);
  const p = proposals[0]!;
  console.log(`policy advise: ${RUNS} runs, ${broad.auditLines.length} audit lines ->\n${p.manifest}`);
  expect(p).toMatchObject({
    key: { role: 'deployer', policyRule: 'deploys' },
    runs: RUNS,
    branches: ['refs/heads/main', 'refs/heads/release'],
  });
  // Exactly what the runs did: configmaps by any name, the one Service by its name.
  expect(
    p.rules.map(({ apiGroups, resources, verbs, resourceNames }) => ({
      apiGroups,
      resources,
      verbs,
      resourceNames,
    })),
  ).toEqual([
    {
      apiGroups: [''],
      resources: ['configmaps'],
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'],
      resourceNames: undefined,
    },
    { apiGroups: [''], resources: ['services'], verbs: ['get'], resourceNames: ['web'] },
  ]);
  expect(p.rules.every((r) => r.runs === RUNS)).toBe(true);
  // Listed apart: the refused step, and whatever else kubectl tried and lacked on its way (the
  // same in every run).
  console.log(`refused: ${JSON.stringify(p.refused)}`);
  expect(p.refused).toContainEqual(
    expect.objectContaining({ verb: 'list', resource: 'secrets', calls: RUNS }),
  );
  expect(p.refused.every((t) => t.calls === RUNS)).toBe(true);

  // The admin applies the Role and grants it in place of deployer (with the RBAC `rbac generate`
  // adds for a named Role: bind and watch on it, by name).
  kubectlAdmin(['apply', '-f', '-'], p.manifest);
  kubectlAdmin(
    ['apply', '-f', '-'],
    [
      dump({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'k8s-ea-broker-minimal', namespace: env.ns },
        rules: [
          {
            apiGroups: ['rbac.authorization.k8s.io'],
            resources: ['roles'],
            verbs: ['bind', 'watch'],
            resourceNames: ['deployer-minimal'],
          },
        ],
      }),
      dump({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'k8s-ea-broker-minimal', namespace: env.ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'k8s-ea-broker-minimal' },
        subjects: [
          { kind: 'ServiceAccount', name: env.rbac.serviceAccount, namespace: env.rbac.brokerNamespace },
        ],
      }),
    ].join('---\n'),
  );
  const policy = policyYaml({
    namespaces: [env.ns],
    roles: { 'deployer-minimal': { role: 'deployer-minimal' } },
    rules: [{ name: 'deploys', roles: ['deployer-minimal'], match: ANY_BRANCH }],
  });
  const minimal = await env.startInProcessBroker({
    gateway: true,
    policy: parsePolicy(policy, 'policy.yaml'),
  });

  const kubeconfig = await grantAt(minimal, 'deployer-minimal', RUNS + 1);
  expect((await job(kubeconfig, RUNS + 1)).map(([what, status]) => [what, status])).toEqual(EXPECTED);
  // What deployer allowed and no run used: refused by the API server (403 through the gateway).
  for (const outside of [
    ['get', 'pods'],
    ['get', 'service', 'other'],
    ['delete', 'service', 'web'],
    ['get', 'deployments'],
  ]) {
    const r = await kubectl(kubeconfig, outside);
    expect([outside.join(' '), r.status, /forbidden/i.test(r.stderr)]).toEqual([outside.join(' '), 1, true]);
  }
}, 600_000);
