// `policy advise` (src/broker/advise/, cli/policy-advise.ts) over audit lines written by the
// broker's own audit log (so the format is the one the broker writes) and API server audit events.
import { describe, expect, test } from '@jest/globals';
import { createAuditLog, type AuditEvent } from '../../../src/broker/audit.js';
import { readAuditInput } from '../../../src/broker/advise/audit-input.js';
import { proposeRoles } from '../../../src/broker/advise/propose-role.js';
import { cli } from '../cli/support/cli.js';

const REPO = '123456789';
const WORKFLOW = 'octo/app/.github/workflows/deploy.yml@refs/heads/main';

interface Call {
  verb: string;
  path: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  status: number;
}

/** The broker's lines for one run: its exchange, then one gateway line per call. */
function runLines(
  run: number,
  calls: Call[],
  opts: { workflow?: string; ref?: string; role?: string } = {},
): string[] {
  const lines: string[] = [];
  const audit = createAuditLog((l) => lines.push(l.trimEnd()));
  const grantId = `k8s-ea-${String(run).padStart(8, '0')}`;
  const claims = {
    repository_id: REPO,
    run_id: String(1000 + run),
    run_attempt: '1',
    job_workflow_ref: opts.workflow ?? WORKFLOW,
    ref: opts.ref ?? 'refs/heads/main',
  } as AuditEvent['claims'];
  audit.record({
    action: 'exchange',
    claims,
    grantId,
    namespace: 'ci',
    serviceAccount: grantId,
    role: opts.role ?? 'deployer',
    policyRule: 'deploys',
  });
  calls.forEach((c, i) =>
    audit.record({
      action: 'gateway',
      claims,
      grantId,
      grantNamespace: 'ci',
      policyRule: 'deploys',
      apiAuditId: `a-${run}-${i}`,
      ...c,
    }),
  );
  return lines;
}

const core = (rest: string) => `/api/v1/namespaces/ci/${rest}`;
const apps = (rest: string) => `/apis/apps/v1/namespaces/ci/${rest}`;

function deployRun(run: number): Call[] {
  return [
    {
      verb: 'get',
      path: core('configmaps/app-config'),
      resource: 'configmaps',
      namespace: 'ci',
      name: 'app-config',
      status: 200,
    },
    { verb: 'list', path: core('pods'), resource: 'pods', namespace: 'ci', status: 200 },
    { verb: 'watch', path: core('pods'), resource: 'pods', namespace: 'ci', status: 200 },
    {
      verb: 'patch',
      path: apps(`deployments/web-${run}`),
      resource: 'deployments',
      namespace: 'ci',
      name: `web-${run}`,
      status: 200,
    },
    // A 404 was still authorized.
    {
      verb: 'get',
      path: apps(`deployments/web-${run}`),
      resource: 'deployments',
      namespace: 'ci',
      name: `web-${run}`,
      status: 404,
    },
    { verb: 'get', path: core('secrets/db'), resource: 'secrets', namespace: 'ci', name: 'db', status: 403 },
    // Never reached the API server: no evidence either way.
    { verb: 'delete', path: core('pods/x'), resource: 'pods', namespace: 'ci', name: 'x', status: 429 },
  ];
}

describe('proposals', () => {
  const text = [1, 2, 3].flatMap((r) => runLines(r, deployRun(r))).join('\n');

  test('verbs and resources exactly; resourceNames only where every run used the same names', () => {
    const [p, more] = proposeRoles(readAuditInput(text).calls);
    expect(more).toBeUndefined();
    expect(p!.key).toEqual({
      policyRule: 'deploys',
      repositoryId: REPO,
      workflow: WORKFLOW,
      role: 'deployer',
    });
    expect(p!.runs).toBe(3);
    expect(p!.namespaces).toEqual(['ci']);
    expect(
      p!.rules.map(({ apiGroups, resources, verbs, resourceNames }) => ({
        apiGroups,
        resources,
        verbs,
        resourceNames,
      })),
    ).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['app-config'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'], resourceNames: undefined },
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'], resourceNames: undefined },
    ]);
    expect(p!.rules[2]).toMatchObject({ calls: 6, runs: 3, branches: ['refs/heads/main'] });
  });

  test('403s are listed apart, with their names and runs, and stay out of the Role', () => {
    const [p] = proposeRoles(readAuditInput(text).calls);
    expect(p!.refused).toEqual([
      {
        verb: 'get',
        apiGroup: '',
        resource: 'secrets',
        subresource: undefined,
        namespace: 'ci',
        names: ['db'],
        calls: 3,
        runs: 3,
      },
    ]);
    expect(JSON.stringify(p!.rules)).not.toContain('secrets');
  });

  test('a name used by only some runs is not pinned', () => {
    const lines = [
      ...runLines(1, [
        {
          verb: 'get',
          path: core('configmaps/a'),
          resource: 'configmaps',
          namespace: 'ci',
          name: 'a',
          status: 200,
        },
      ]),
      ...runLines(2, [
        {
          verb: 'get',
          path: core('configmaps/b'),
          resource: 'configmaps',
          namespace: 'ci',
          name: 'b',
          status: 200,
        },
      ]),
    ];
    const [p] = proposeRoles(readAuditInput(lines.join('\n')).calls);
    expect(p!.rules).toEqual([expect.objectContaining({ resources: ['configmaps'], verbs: ['get'] })]);
    expect(p!.rules[0]!.resourceNames).toBeUndefined();
  });

  test('a create is never pinned to a name (RBAC sees none)', () => {
    const create: Call = {
      verb: 'create',
      path: core('configmaps'),
      resource: 'configmaps',
      namespace: 'ci',
      name: 'same',
      status: 201,
    };
    const [p] = proposeRoles(
      readAuditInput([...runLines(1, [create]), ...runLines(2, [create])].join('\n')).calls,
    );
    expect(p!.rules[0]!.resourceNames).toBeUndefined();
  });

  test('used permissions the broker refuses to grant are left out and named', () => {
    const exec: Call = {
      verb: 'create',
      path: core('pods/p/exec'),
      resource: 'pods',
      subresource: 'exec',
      namespace: 'ci',
      name: 'p',
      status: 101,
    };
    const [p] = proposeRoles(readAuditInput(runLines(1, [exec, deployRun(1)[1]!]).join('\n')).calls);
    expect(p!.rules.map((r) => r.resources)).toEqual([['pods']]);
    expect(p!.refusedByVetting).toEqual([
      {
        rule: expect.objectContaining({ resources: ['pods/exec'] }),
        why: ['runs commands in running containers'],
      },
    ]);
  });

  test('cluster-scoped and non-resource calls are listed apart: no Role grants them', () => {
    const calls: Call[] = [
      { verb: 'get', path: '/api/v1/namespaces/ci', resource: 'namespaces', name: 'ci', status: 200 },
      { verb: 'get', path: '/version', status: 200 },
    ];
    const [p] = proposeRoles(readAuditInput(runLines(1, calls).join('\n')).calls);
    expect(p!.rules).toEqual([]);
    expect(p!.outsideRole.map((t) => [t.verb, t.resource])).toEqual([
      ['get', 'namespaces'],
      ['get', undefined],
    ]);
  });

  test('one proposal per workflow (and rule, repository, role)', () => {
    const lines = [
      ...runLines(1, deployRun(1)),
      ...runLines(2, deployRun(2), { workflow: 'octo/app/.github/workflows/other.yml@refs/heads/main' }),
    ];
    expect(proposeRoles(readAuditInput(lines.join('\n')).calls).map((p) => [p.key.workflow, p.runs])).toEqual(
      [
        ['octo/app/.github/workflows/deploy.yml@refs/heads/main', 1],
        ['octo/app/.github/workflows/other.yml@refs/heads/main', 1],
      ],
    );
  });
});

describe('the API server audit log', () => {
  const event = (auditID: string, user: string, verb: string, resource: string, name: string, code: number) =>
    JSON.stringify({
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      stage: 'ResponseComplete',
      auditID,
      verb,
      user: { username: user },
      objectRef: {
        resource,
        namespace: 'ci',
        name,
        apiGroup: resource === 'deployments' ? 'apps' : undefined,
      },
      responseStatus: { code },
    });

  test('direct calls of a grant join its exchange line; a gateway call is counted once', () => {
    const broker = runLines(7, [deployRun(7)[0]!]);
    const sa = 'system:serviceaccount:ci:k8s-ea-00000007';
    const log = [
      event('a-7-0', sa, 'get', 'configmaps', 'app-config', 200), // the gateway's call, as the API server saw it
      { ...JSON.parse(event('d-1', sa, 'update', 'deployments', 'web', 200)), stage: 'RequestReceived' },
      event('d-1', sa, 'update', 'deployments', 'web', 200),
      event('d-2', sa, 'delete', 'deployments', 'web', 403),
      event('d-3', 'system:serviceaccount:ci:someone-else', 'delete', 'pods', 'x', 200),
    ].map((l) => (typeof l === 'string' ? l : JSON.stringify(l)));
    const input = readAuditInput([...broker, ...log, 'not json'].join('\n'));
    expect(input.calls.map((c) => [c.verb, c.resource, c.status])).toEqual([
      ['get', 'configmaps', 200],
      ['update', 'deployments', 200],
      ['delete', 'deployments', 403],
    ]);
    const [p] = proposeRoles(input.calls);
    expect(p!.rules.map((r) => [r.apiGroups[0], r.resources, r.verbs])).toEqual([
      ['', ['configmaps'], ['get']],
      ['apps', ['deployments'], ['update']],
    ]);
    expect(p!.refused.map((t) => t.verb)).toEqual(['delete']);
  });
});

describe('policy advise (the command)', () => {
  const text = [1, 2].flatMap((r) => runLines(r, deployRun(r))).join('\n');

  test('prints the Role manifest, the policy diff and the refused calls', async () => {
    const run = await cli(['policy', 'advise'], text);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      'kind: Role\nmetadata:\n  name: deployer-minimal\n  namespace: ci\nrules:\n',
    );
    expect(run.stdout).toContain(
      '  - apiGroups: [apps]\n    resources: [deployments]\n    verbs: [get, patch]\n',
    );
    expect(run.stdout).toContain('-    roles: [deployer]\n+    roles: [deployer-minimal]');
    expect(run.stdout).toMatch(/refused \(403\)[^\n]*\n#\s+get secrets in ci \[db\]: 2 calls in 2 runs/);
  });

  test('--json carries the same proposal for tools', async () => {
    const run = await cli(['policy', 'advise', '--json', '-'], text);
    const out = JSON.parse(run.stdout) as {
      proposals: { rules: unknown[]; manifest: string }[];
      calls: number;
    };
    expect(out.calls).toBe(14);
    expect(out.proposals).toHaveLength(1);
    expect(out.proposals[0]!.rules).toHaveLength(3);
    expect(out.proposals[0]!.manifest).toContain('kind: Role');
  });

  test('no call of a grant: exit 1 and says so', async () => {
    const run = await cli(['policy', 'advise'], '{"type":"audit","action":"renewal"}\n');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no call of a grant/);
  });
});
