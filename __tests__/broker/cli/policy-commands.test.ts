// `policy check` and `policy test` without a cluster: the loader's verdict and problems as the broker
// would report them, and per request which rule allows it or, rule by rule, why not.
import { afterAll, describe, expect, test } from '@jest/globals';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { policyYaml } from '../../../test/support/policy.js';
import { cli, tempFiles } from './support/cli.js';

const files = tempFiles();
afterAll(() => files.cleanup());

const POLICY = files.write(
  'policy.yaml',
  policyYaml({
    namespaces: ['staging'],
    roles: {
      deployer: { clusterRole: 'k8s-ea-deployer' },
      viewer: { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] },
    },
    rules: [
      { name: 'main-deploys', roles: ['deployer'], maxTtlSeconds: 600 },
      { name: 'any-branch-views', match: { ref: { glob: 'refs/heads/feature/*' } }, roles: ['viewer'] },
      { name: 'prod', match: { environment: 'production' }, namespaces: ['production'], roles: ['deployer'] },
    ],
  }),
);
const BROKEN = files.write(
  'broken.yaml',
  policyYaml({ namespaces: ['staging'], rules: [{ match: { ref: 'main' } }] }),
);
const claimsFile = (overrides: Record<string, unknown> = {}) =>
  files.write(
    `claims-${Math.random().toString(36).slice(2)}.json`,
    JSON.stringify(defaultClaims(overrides as never)),
  );

describe('policy check', () => {
  test('a valid policy: exit 0 and a summary of rules, namespaces and roles', async () => {
    const run = await cli(['policy', 'check', POLICY]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      `${POLICY}: valid: 3 rule(s); namespaces: production, staging; roles: deployer (ClusterRole k8s-ea-deployer), viewer (inline)\n`,
    );
  });

  test('an invalid policy: exit 1 and the loader problem as file:line: field: message', async () => {
    const run = await cli(['policy', 'check', BROKEN]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      new RegExp(`^${BROKEN}:\\d+: rules\\[0\\]\\.match\\.ref: "main" is not a full git ref`),
    );
  });

  test('--json: the problems as objects', async () => {
    const run = await cli(['policy', 'check', BROKEN, '--json']);
    expect(run.code).toBe(1);
    const out = JSON.parse(run.stdout) as { valid: boolean; problems: { field: string; line: number }[] };
    expect(out.valid).toBe(false);
    expect(out.problems[0]).toMatchObject({ field: 'rules[0].match.ref', line: expect.any(Number) });
    expect(JSON.parse((await cli(['policy', 'check', POLICY, '--json'])).stdout)).toMatchObject({
      valid: true,
    });
  });

  test('--issuer: a pinned iss outside the trusted issuers is refused, as the broker refuses it', async () => {
    const pinned = files.write(
      'pinned.yaml',
      policyYaml({
        namespaces: ['s'],
        rules: [{ match: { iss: 'https://token.actions.githubusercontent.com' } }],
      }),
    );
    expect((await cli(['policy', 'check', pinned])).code).toBe(0);
    const run = await cli([
      'policy',
      'check',
      pinned,
      '--issuer',
      'https://ghes.example.com/_services/token',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('is not one of the issuers the broker trusts');
  });

  test('a missing file: exit 1, said as the broker says it', async () => {
    const run = await cli(['policy', 'check', '/nonexistent/policy.yaml']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('/nonexistent/policy.yaml: cannot read the policy file (ENOENT)\n');
  });
});

describe('policy test', () => {
  const ask = (claims: string, namespace: string, role: string, ...more: string[]) =>
    cli(['policy', 'test', POLICY, '--claims', claims, '--namespace', namespace, '--role', role, ...more]);

  test('allowed: exit 0, the rule, its line, the ttl and the role', async () => {
    const run = await ask(claimsFile(), 'staging', 'deployer');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `^allowed by rule main-deploys \\(${POLICY}:\\d+\\): namespace staging, role deployer, ttl 600 s, ClusterRole k8s-ea-deployer\\n$`,
      ),
    );
  });

  test('refused: exit 1, the reason, and each rule with what stands in its way', async () => {
    const run = await ask(claimsFile({ ref: 'refs/heads/dev' }), 'staging', 'deployer', '--ttl', '700');
    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      'refused (no_matching_rule): namespace staging, role deployer: no policy rule matches the token claims',
    );
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(
        /^ {2}rule main-deploys \(.*\): match\.ref: "refs\/heads\/dev" is not "refs\/heads\/main"; ttl 700 s exceeds maxTtlSeconds 600$/,
      ),
      expect.stringMatching(
        /^ {2}rule any-branch-views \(.*\): match\.ref: "refs\/heads\/dev" is not \{ glob: "refs\/heads\/feature\/\*" \}; role "deployer" is not in roles \[viewer\]$/,
      ),
      expect.stringMatching(
        /^ {2}rule prod \(.*\): match\.ref: .*; match\.environment: the claims have no environment \(the rule wants "production"\); namespace "staging" is not in namespaces \[production\]$/,
      ),
    ]);
  });

  test('the reason is the furthest stage any rule reached, as in the broker audit line', async () => {
    const cases: [string[], string][] = [
      [[claimsFile(), 'production', 'deployer'], 'namespace_not_allowed'],
      [[claimsFile(), 'staging', 'viewer'], 'role_not_allowed'],
      [[claimsFile(), 'staging', 'deployer', '--ttl', '601'], 'ttl_exceeds_rule'],
      [[claimsFile(), 'staging', 'deployer', '--ttl', '30'], 'ttl_too_short'],
      [[claimsFile(), 'Staging', 'deployer'], 'invalid_request'],
      [[claimsFile({ repository_id: 123456789 }), 'staging', 'deployer'], 'jwt_claims'],
    ];
    for (const [[claims, ns, role, ...more], reason] of cases) {
      const run = await ask(claims!, ns!, role!, ...more, '--json');
      expect({ code: run.code, reason: (JSON.parse(run.stdout) as { reason: string }).reason }).toEqual({
        code: 1,
        reason,
      });
    }
  });

  test('--json: the verdict and every rule; the allowing rule has no problems', async () => {
    const run = await ask(
      claimsFile({ ref: 'refs/heads/feature/x' }),
      'staging',
      'viewer',
      '--ttl',
      '120',
      '--json',
    );
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      allowed: true,
      rule: 'any-branch-views',
      ttlSeconds: 120,
      roleRef: { kind: 'Inline', name: 'viewer' },
    });
    expect(out.rules).toEqual([
      { rule: 'main-deploys', source: expect.any(String), problems: expect.any(Array) },
      { rule: 'any-branch-views', source: expect.any(String), problems: [] },
      { rule: 'prod', source: expect.any(String), problems: expect.any(Array) },
    ]);
  });

  test('claims from stdin, with the per-token claims left out', async () => {
    const claims: Record<string, unknown> = { ...defaultClaims() };
    for (const perToken of ['jti', 'iat', 'exp', 'run_id', 'run_attempt']) delete claims[perToken];
    expect(claims).not.toHaveProperty('run_id');
    const run = await cli(
      ['policy', 'test', POLICY, '--claims', '-', '--namespace', 'staging', '--role', 'deployer'],
      JSON.stringify(claims),
    );
    expect(run.stdout).toMatch(/^allowed by rule main-deploys/);
  });

  test('an invalid policy: exit 1 with its problems', async () => {
    const run = await cli([
      'policy',
      'test',
      BROKEN,
      '--claims',
      claimsFile(),
      '--namespace',
      's',
      '--role',
      'viewer',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('is not a full git ref');
  });
});

describe('job namespaces the cluster or the broker keeps (issue 24)', () => {
  const granting = (namespace: string) =>
    files.write(`ns-${namespace}.yaml`, policyYaml({ namespaces: ['staging', namespace] }));

  test.each(['kube-system', 'kube-public', 'kube-node-lease', 'default', 'k8s-ephemeral-access'])(
    '%s is refused by policy check, policy test and rbac generate, naming the line',
    async (namespace) => {
      const file = granting(namespace);
      const claims = claimsFile();
      for (const argv of [
        ['policy', 'check', file],
        ['policy', 'test', file, '--claims', claims, '--namespace', namespace, '--role', 'viewer'],
        ['rbac', 'generate', file],
      ]) {
        const run = await cli(argv);
        expect(run.code).toBe(1);
        expect(run.stdout).toBe('');
        expect(run.stderr).toMatch(
          new RegExp(
            `^${file}:\\d+: rules\\[0\\]\\.namespaces\\[1\\]: "${namespace}" (cannot be a job namespace|is the broker's own namespace)`,
          ),
        );
      }
    },
  );

  test('--broker-namespace names the broker namespace that is refused, and frees the default one', async () => {
    const file = files.write('ns-brk.yaml', policyYaml({ namespaces: ['staging', 'ci-broker'] }));
    for (const command of [
      ['policy', 'check'],
      ['rbac', 'generate'],
    ]) {
      const refused = await cli([...command, file, '--broker-namespace', 'ci-broker']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`"ci-broker" is the broker's own namespace`);
    }
    expect((await cli(['policy', 'check', file])).code).toBe(0);
    const other = granting('k8s-ephemeral-access');
    expect((await cli(['policy', 'check', other, '--broker-namespace', 'ci-broker'])).code).toBe(0);
  });
});
