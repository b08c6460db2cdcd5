// `policy test` agrees with the running broker (issue 14, "must show"): one table of claim sets and
// requests, each signed into a token and exchanged at the built broker against the real control
// plane, and the same token's claims fed to the built bundle's `policy test --json`. Allowed by the
// CLI exactly when the broker grants, by the rule the audit line names; refused with the reason
// the broker's audit line gives. Rules with sourceRanges decide on the address the broker sees, which the
// CLI is given with --client-ip.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../../src/shared/api.js';
import type { RunningBroker } from '../../../test/support/broker.js';
import { ensureBrokerBuilt } from '../../../test/support/ensure-built.js';
import { runChild } from '../../../test/support/runner.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { GitHubClaims } from '../../../test/support/oidc-issuer.js';

let env: BrokerEnv;
let broker: RunningBroker;
let entry: string;
let A: string;
let B: string;

const TAG = { ref: 'refs/tags/v1.2.3', environment: 'production' };
const CLIENT_IP = '127.0.0.1';
const VETTED = 'octo-org/octo-repo/.github/workflows/deploy.yml@refs/tags/v1.2.3';

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['agree-a', 'agree-b'],
    policy: {
      roles: { deployer: { clusterRole: 'k8s-ea-deployer' }, viewer: { clusterRole: 'k8s-ea-viewer' } },
      rules: [
        {
          name: 'main-deploys',
          match: { event_name: ['push', 'workflow_dispatch'], runner_environment: 'github-hosted' },
          namespaces: ['NS_A'],
          roles: ['deployer', 'viewer'],
          maxTtlSeconds: 900,
        },
        {
          name: 'release-views',
          match: { ref: { glob: 'refs/heads/release/**' }, event_name: ['push', 'schedule'] },
          roles: ['viewer'],
          maxTtlSeconds: 600,
        },
        {
          name: 'prod-env',
          match: {
            ref: { glob: 'refs/tags/v*' },
            environment: 'production',
            job_workflow_ref: { glob: 'octo-org/octo-repo/.github/workflows/deploy.yml@refs/tags/v*' },
          },
          namespaces: ['NS_B'],
          roles: ['deployer'],
          maxTtlSeconds: 1800,
        },
        { name: 'long-views', namespaces: ['NS_B'], roles: ['viewer'], maxTtlSeconds: 3600 },
        // Self-hosted runners by address: the broker sees this test at 127.0.0.1, and so is told the CLI.
        {
          name: 'loopback-deploys',
          match: { runner_environment: 'self-hosted' },
          namespaces: ['NS_A'],
          roles: ['deployer'],
          maxTtlSeconds: 900,
          sourceRanges: ['127.0.0.0/8'],
        },
        {
          name: 'lan-deploys',
          match: { runner_environment: 'self-hosted' },
          namespaces: ['NS_B'],
          roles: ['deployer'],
          maxTtlSeconds: 900,
          sourceRanges: ['10.20.0.0/16'],
        },
      ],
    },
  });
  [A, B] = env.namespaces as [string, string];
  entry = await ensureBrokerBuilt();
  broker = await env.startBroker({
    policyYaml: env.policyYaml.replaceAll('NS_A', A).replaceAll('NS_B', B),
  });
}, 120_000);

afterAll(async () => {
  await env?.cleanup();
});

type Row = [what: string, claims: Partial<GitHubClaims>, ns: 'A' | 'B' | string, role: string, ttl?: number];
const TABLE: Row[] = [
  ['main push, deployer in A', {}, 'A', 'deployer'],
  ['main push, viewer in A at the maximum ttl', {}, 'A', 'viewer', 900],
  ['main push, viewer in A above the maximum ttl', {}, 'A', 'viewer', 901],
  ['main push, viewer in B for an hour', {}, 'B', 'viewer', 3600],
  ['main push, deployer in B', {}, 'B', 'deployer'],
  ['manual run, deployer in A', { event_name: 'workflow_dispatch' }, 'A', 'deployer'],
  ['manual run, viewer in B', { event_name: 'workflow_dispatch' }, 'B', 'viewer'],
  ['pull request', { event_name: 'pull_request' }, 'A', 'viewer'],
  ['release branch, viewer in A', { ref: 'refs/heads/release/1.x' }, 'A', 'viewer'],
  [
    'nested release branch on schedule',
    { ref: 'refs/heads/release/2024/q3', event_name: 'schedule' },
    'B',
    'viewer',
    600,
  ],
  ['release branch, deployer', { ref: 'refs/heads/release/1.x' }, 'A', 'deployer'],
  ['the bare release ref', { ref: 'refs/heads/release' }, 'A', 'viewer'],
  ['a ref with a .. segment', { ref: 'refs/heads/release/../main' }, 'A', 'viewer'],
  ['self-hosted runner, deployer in A', { runner_environment: 'self-hosted' }, 'A', 'deployer'],
  ['self-hosted runner, viewer in B', { runner_environment: 'self-hosted' }, 'B', 'viewer'],
  [
    'self-hosted runner, deployer in B, from outside its rule’s range',
    { runner_environment: 'self-hosted' },
    'B',
    'deployer',
  ],
  ['another repository', { repository_id: '999' }, 'A', 'viewer'],
  ['another owner', { repository_owner_id: '987655' }, 'A', 'viewer'],
  ['vetted tag deploy to B', { ...TAG, job_workflow_ref: VETTED }, 'B', 'deployer', 1800],
  [
    'tag deploy from the staging environment',
    { ...TAG, environment: 'staging', job_workflow_ref: VETTED },
    'B',
    'deployer',
  ],
  [
    'tag deploy through an unvetted workflow',
    { ...TAG, job_workflow_ref: `${VETTED.split('@')[0]}@refs/heads/main` },
    'B',
    'deployer',
  ],
  ['vetted tag deploy to A', { ...TAG, job_workflow_ref: VETTED }, 'A', 'deployer'],
  ['ttl below the minimum', {}, 'A', 'viewer', 30],
  ['a namespace that is no DNS label', {}, 'Not_A_Namespace', 'viewer'],
  ['a role the policy does not know', {}, 'A', 'cluster-admin'],
  ['main push with an environment', { environment: 'production' }, 'A', 'deployer'],
  ['a look-alike ref in another case', { ref: 'refs/heads/Main' }, 'A', 'viewer'],
];

interface CliAnswer {
  allowed: boolean;
  rule?: string;
  reason?: string;
  ttlSeconds?: number;
}

/** The CLI's answer for one row, from a process of its own (the rows' processes run side by side). */
async function cliAnswer(row: Row, namespace: string, token: string, file: string) {
  const [, , , role, ttl] = row;
  writeFileSync(file, Buffer.from(token.split('.')[1]!, 'base64url'));
  const args = [
    'policy',
    'test',
    policyFile(),
    '--claims',
    file,
    '--namespace',
    namespace,
    '--role',
    role,
    '--json',
    // The address the broker sees this test's requests come from (it listens on 127.0.0.1).
    '--client-ip',
    CLIENT_IP,
  ];
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  const run = await runChild(process.execPath, [entry, ...args]);
  return { exit: run.code, answer: JSON.parse(run.stdout) as CliAnswer };
}

const policyFile = () => join(dirname(broker.configPath), 'policy.yaml');

test(`policy test and the broker agree on ${TABLE.length} claim sets`, async () => {
  expect(TABLE.length).toBeGreaterThanOrEqual(20);
  const rows = await Promise.all(
    TABLE.map(async (row, i) => {
      const nsKey = row[2];
      const namespace = nsKey === 'A' ? A : nsKey === 'B' ? B : nsKey;
      const token = await env.issuer.sign(row[1]);
      const claimsFile = join(dirname(broker.configPath), `claims-${i}.json`);
      return { row, namespace, token, cli: await cliAnswer(row, namespace, token, claimsFile) };
    }),
  );
  const outcomes: string[] = [];
  let allowed = 0;
  for (const { row, namespace, token, cli: run } of rows) {
    const [what, , , role, ttl] = row;
    const cli = run.answer;
    const body = { namespace, role, ...(ttl === undefined ? {} : { ttlSeconds: ttl }) };
    const r = await broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', { token, body });
    const requestId = r.headers['x-request-id'];
    const audit = await broker.auditLine((l) => l.requestId === requestId);
    const broker_ = {
      allowed: r.status === 200,
      rule: audit.policyRule as string | undefined,
      reason: audit.reason as string | undefined,
    };
    outcomes.push(`${what}: ${cli.allowed ? `allowed by ${cli.rule}` : `refused (${cli.reason})`}`);
    expect({ what, exit: run.exit, ...pick(cli) }).toEqual({
      what,
      exit: broker_.allowed ? 0 : 1,
      ...pick(broker_),
    });
    if (cli.allowed) allowed += 1;
  }
  // The table is worth something only if it has both answers, and more than one reason.
  console.log(`policy test vs broker, ${TABLE.length} claim sets:\n  ${outcomes.join('\n  ')}`);
  expect(allowed).toBeGreaterThanOrEqual(8);
  expect(TABLE.length - allowed).toBeGreaterThanOrEqual(8);
  // 27 CLI processes and exchanges: about 10 s of CPU, minutes on a busy 2-core machine.
}, 240_000);

function pick(o: { allowed: boolean; rule?: string; reason?: string }) {
  return o.allowed ? { allowed: true, rule: o.rule } : { allowed: false, reason: o.reason };
}
