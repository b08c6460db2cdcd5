// Loading a policy: the example file loads, and every kind of mistake is refused with the file,
// the exact line and the field, including every dangerous permission.
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../src/broker/yaml-fields/config-error.js';
import { findDangerousRules, loadPolicy, parsePolicy } from '../../../src/broker/policy/index.js';
import type { VerifiedClaims } from '../../../src/broker/types.js';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';

const EXAMPLE = fileURLToPath(new URL('../../../deploy/examples/policy.yaml', import.meta.url));

/**
 * A valid policy; tests replace one line or block at a time. Written out, not built with
 * test/support/policy.ts: the raw text is what these tests are about (the parser reports the exact
 * line of each mistake, and the tests name lines of this text), so its layout must not follow a
 * YAML dumper's.
 */
const BASE = `apiVersion: k8s-ephemeral-access/v1
kind: Policy
roles:
  deployer: { clusterRole: k8s-ea-deployer }
  viewer:
    rules:
      - apiGroups: [""]
        resources: [pods]
        verbs: [get, list, watch]
rules:
  - name: web-deploys
    match:
      repository_owner_id: "987654"
      repository_id: "123456789"
      ref: refs/heads/main
      event_name: [push, workflow_dispatch]
    namespaces: [staging]
    roles: [deployer, viewer]
    maxTtlSeconds: 900
`;

function issues(text: string): { line: number | undefined; field: string; message: string }[] {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(({ line, field, message }) => {
      return { line, field, message };
    });
  }
  throw new Error('policy was accepted');
}

/** BASE with line `n` (1-based) replaced by `replacement` (which may span several lines). */
function withLine(n: number, replacement: string): string {
  const lines = BASE.split('\n');
  lines[n - 1] = replacement;
  return lines.join('\n');
}

describe('valid policies', () => {
  test('the base policy used by these tests is valid', () => {
    const policy = parsePolicy(BASE, 'policy.yaml');
    expect(policy.rules.map((r) => r.name)).toEqual(['web-deploys']);
    expect(policy.rules[0]?.source).toBe('policy.yaml:11');
    expect(policy.roles.deployer).toEqual({ kind: 'ClusterRole', name: 'k8s-ea-deployer' });
  });

  test('the example file in deploy/examples loads', () => {
    const policy = loadPolicy(EXAMPLE);
    expect(policy.rules.map((r) => r.name)).toEqual([
      'web-staging-deploys',
      'web-team-deploys',
      'web-release-viewers',
      'web-production-deploys',
      'web-self-hosted-staging',
    ]);
    expect(policy.rules.find((r) => r.name === 'web-self-hosted-staging')?.sourceRanges).toEqual([
      '10.20.0.0/16',
      'fd00:20::/48',
    ]);
    expect(policy.roles).toEqual({
      deployer: { kind: 'ClusterRole', name: 'k8s-ea-deployer' },
      viewer: { kind: 'ClusterRole', name: 'k8s-ea-viewer' },
    });
  });

  test('the loaded policy is frozen', () => {
    const policy = parsePolicy(BASE, 'policy.yaml');
    expect(Object.isFrozen(policy.rules[0]?.match.repository_id)).toBe(true);
    expect(() => (policy.rules as unknown[]).push({})).toThrow(TypeError);
  });

  test('read-only access to RBAC objects and ordinary workload writes are acceptable inline', () => {
    const text = withLine(
      9,
      `        verbs: [get, list, watch]
      - apiGroups: [rbac.authorization.k8s.io]
        resources: [roles, rolebindings]
        verbs: [get, list]
      - apiGroups: [apps]
        resources: [deployments, deployments/scale]
        verbs: [get, list, create, update, patch, delete]
      - apiGroups: [""]
        resources: [pods]
        verbs: [get, list, watch, delete]`,
    );
    expect(() => parsePolicy(text, 'policy.yaml')).not.toThrow();
  });
});

describe('errors name the file, the exact line and the field', () => {
  test('the message has the form file:line: field: problem', () => {
    const text = withLine(14, '      repository_id: 123456789');
    expect(() => parsePolicy(text, 'deploy/policy.yaml')).toThrow(
      'deploy/policy.yaml:14: rules[0].match.repository_id: IDs must be quoted strings, as GitHub sends them: repository_id: "123456789"',
    );
  });

  test('YAML syntax errors carry the line', () => {
    expect(issues(withLine(8, '        resources: [pods'))).toEqual([
      expect.objectContaining({
        line: expect.any(Number),
        message: expect.stringContaining('not valid YAML'),
      }),
    ]);
    expect(issues(withLine(8, '        resources: [pods'))[0]?.line).toBeGreaterThanOrEqual(8);
  });

  test('a duplicated key is refused at its second occurrence', () => {
    expect(issues(withLine(15, '      ref: refs/heads/main\n      ref: refs/heads/dev'))).toEqual([
      expect.objectContaining({ line: 16, message: expect.stringContaining('duplicated mapping key') }),
    ]);
  });

  test('a misspelt field is refused (never ignored) with a suggestion', () => {
    expect(issues(withLine(15, '      ref: refs/heads/main\n      enviroment: production'))).toEqual([
      {
        line: 16,
        field: 'rules[0].match.enviroment',
        message: expect.stringContaining('did you mean "environment"?'),
      },
    ]);
  });

  test('an unknown top-level field is refused', () => {
    expect(issues(`${BASE}defaults: {}\n`)).toEqual([
      expect.objectContaining({ line: 20, field: 'defaults' }),
    ]);
  });

  test('wrong apiVersion and kind are refused', () => {
    const text = withLine(1, 'apiVersion: v1').replace('kind: Policy', 'kind: Config');
    expect(issues(text)).toEqual([
      expect.objectContaining({ line: 1, field: 'apiVersion' }),
      expect.objectContaining({ line: 2, field: 'kind' }),
    ]);
  });

  test('an empty file is refused', () => {
    expect(issues('')[0]?.message).toContain('not valid YAML');
    expect(issues('# only a comment\n')[0]?.message).toContain('not valid YAML');
  });

  test('all problems of the file are reported together', () => {
    const text = withLine(13, '      repository_owner_id: 987654')
      .replace('namespaces: [staging]', 'namespaces: [Staging]')
      .replace('maxTtlSeconds: 900', 'maxTtlSeconds: 10');
    expect(issues(text).map((i) => [i.line, i.field])).toEqual([
      [13, 'rules[0].match.repository_owner_id'],
      [17, 'rules[0].namespaces[0]'],
      [19, 'rules[0].maxTtlSeconds'],
    ]);
  });
});

describe('match blocks', () => {
  test.each([
    ['repository_owner_id as a name', 13, '      repository_owner_id: octo-org', 'is not a numeric ID'],
    ['repository_id with a leading zero', 14, '      repository_id: "0123"', 'is not a numeric ID'],
    [
      'repository_id as a glob',
      14,
      '      repository_id: { glob: "*" }',
      'globs are not allowed for repository_id',
    ],
    ['ref as a short branch name', 15, '      ref: main', 'is not a full git ref'],
    ['ref with * written as an exact value', 15, '      ref: refs/heads/*', 'write { glob: "refs/heads/*" }'],
    ['ref with a .. trick', 15, '      ref: refs/heads/main/../x', 'is not a full git ref'],
    [
      'ref glob wider than one ref kind',
      15,
      '      ref: { glob: "refs/**" }',
      'must start with a literal refs/<kind>/',
    ],
    [
      'ref glob with a wildcard kind',
      15,
      '      ref: { glob: "refs/*/main" }',
      'must start with a literal refs/<kind>/',
    ],
    ['ref glob with ? ', 15, '      ref: { glob: "refs/heads/v?" }', 'only * and ** are special'],
    [
      'ref glob with ** inside a segment',
      15,
      '      ref: { glob: "refs/heads/a**" }',
      '"**" must be a whole segment',
    ],
    ['glob mapping with another key', 15, '      ref: { regex: "refs/heads/.*" }', 'unknown field'],
    [
      'event_name as a glob',
      16,
      '      event_name: { glob: "pull_*" }',
      'globs are not allowed for event_name',
    ],
    ['event_name as an empty list', 16, '      event_name: []', 'must list at least one entry'],
    ['event_name listed twice', 16, '      event_name: [push, push]', 'is listed twice'],
    ['event_name capitalised', 16, '      event_name: Push', 'is not a GitHub event name'],
    [
      'runner_environment unknown',
      16,
      '      event_name: push\n      runner_environment: any',
      'must be one of github-hosted, self-hosted',
    ],
    [
      'job_workflow_ref glob with a wildcard owner',
      16,
      '      event_name: push\n      job_workflow_ref: { glob: "*/deploy/.github/workflows/d.yml@refs/heads/main" }',
      'must start with a literal owner/repo/',
    ],
    ['a number as ref', 15, '      ref: 42', 'must be a string'],
    [
      'a ref glob over every branch',
      15,
      '      ref: { glob: "refs/heads/*" }',
      'must not match every ref of its kind',
    ],
    [
      'a ref glob over every branch, deep',
      15,
      '      ref: { glob: "refs/heads/**" }',
      'must not match every ref of its kind',
    ],
    [
      'a ref glob over every tag',
      15,
      '      ref: { glob: "refs/tags/*" }',
      'must not match every ref of its kind',
    ],
    ['an environment glob', 15, '      environment: { glob: "*" }', 'globs are not allowed for environment'],
    [
      'an environment glob of a prefix',
      15,
      '      environment: { glob: "prod*" }',
      'globs are not allowed for environment',
    ],
    ['an environment with * as an exact value', 15, '      environment: prod*', 'matched by exact name only'],
    [
      'iss that is not a URL',
      15,
      '      ref: refs/heads/main\n      iss: github',
      'is not an https:// issuer URL',
    ],
  ])('%s is refused', (_name, line, replacement, message) => {
    const found = issues(withLine(line, replacement));
    expect(found).toHaveLength(1);
    expect(found[0]).toEqual(
      expect.objectContaining({ line: expect.any(Number), message: expect.stringContaining(message) }),
    );
    expect(found[0]?.line).toBeGreaterThanOrEqual(line);
    expect(found[0]?.line).toBeLessThanOrEqual(line + 1);
  });

  test.each([
    ['repository_owner_id', 13],
    ['repository_id', 14],
    ['event_name', 16],
  ])('a rule without %s is refused at the match line', (field, line) => {
    expect(issues(withLine(line, ''))).toEqual([
      { line: 12, field: 'rules[0].match', message: `missing required field "${field}"` },
    ]);
  });

  test('a ref glob that starts its name with a literal is accepted', () => {
    for (const glob of ['refs/heads/release/*', 'refs/heads/release/**', 'refs/tags/v*'])
      expect(() => parsePolicy(withLine(15, `      ref: { glob: "${glob}" }`), 'policy.yaml')).not.toThrow();
  });

  test('a rule that pins neither ref nor environment is refused', () => {
    expect(issues(withLine(15, ''))).toEqual([
      expect.objectContaining({
        line: 12,
        field: 'rules[0].match',
        message: expect.stringContaining('"ref" or "environment"'),
      }),
    ]);
  });

  test('environment alone is enough, and dangerous events are accepted only when listed', () => {
    const text = withLine(15, '      environment: production').replace(
      'event_name: [push, workflow_dispatch]',
      'event_name: [pull_request_target]',
    );
    const policy = parsePolicy(text, 'policy.yaml');
    expect(policy.rules[0]?.match.event_name).toEqual([{ exact: 'pull_request_target' }]);
  });
});

describe('rules', () => {
  test.each([
    ['a namespace that is not a DNS label', 17, '    namespaces: [team_a]', 'is not a namespace name'],
    ['no namespaces', 17, '    namespaces: []', 'must list at least one entry'],
    ['a single namespace not in a list', 17, '    namespaces: staging', 'must be a list'],
    // Issue 24: the cluster's own namespaces, default, and the broker's.
    ['kube-system', 17, '    namespaces: [staging, kube-system]', '"kube-system" cannot be a job namespace'],
    ['kube-public', 17, '    namespaces: [kube-public]', '"kube-public" cannot be a job namespace'],
    [
      'kube-node-lease',
      17,
      '    namespaces: [kube-node-lease]',
      '"kube-node-lease" cannot be a job namespace',
    ],
    ['default', 17, '    namespaces: [default]', '"default" cannot be a job namespace'],
    [
      "the broker's default namespace",
      17,
      '    namespaces: [k8s-ephemeral-access]',
      `"k8s-ephemeral-access" is the broker's own namespace`,
    ],
    ['an undefined role', 18, '    roles: [deployer, admin-ish]', 'role "admin-ish" is not defined'],
    ['maxTtlSeconds too short', 19, '    maxTtlSeconds: 30', 'between 60 and 21600'],
    ['maxTtlSeconds too long', 19, '    maxTtlSeconds: 86400', 'between 60 and 21600'],
    ['maxTtlSeconds quoted', 19, '    maxTtlSeconds: "900"', 'must be a whole number'],
    ['a rule name with capitals', 11, '  - name: Web-Deploys', 'DNS-1123 label'],
  ])('%s is refused', (_name, line, replacement, message) => {
    expect(issues(withLine(line, replacement))).toEqual([
      expect.objectContaining({ line, message: expect.stringContaining(message) }),
    ]);
  });

  test("the broker's namespace is the one the broker runs in (its config's brokerNamespace)", () => {
    const text = withLine(17, '    namespaces: [ci-broker]');
    expect(() => parsePolicy(text, 'policy.yaml')).not.toThrow();
    expect(() => parsePolicy(text, 'policy.yaml', { brokerNamespace: 'ci-broker' })).toThrow(
      /policy\.yaml:17: rules\[0\]\.namespaces\[0\]: "ci-broker" is the broker's own namespace/,
    );
  });

  test('a rule without maxTtlSeconds is refused', () => {
    expect(issues(withLine(19, ''))).toEqual([
      expect.objectContaining({
        line: 11,
        field: 'rules[0]',
        message: 'missing required field "maxTtlSeconds"',
      }),
    ]);
  });

  test('two rules with the same name are refused at the second', () => {
    const second = BASE.slice(BASE.indexOf('  - name:'));
    expect(issues(`${BASE}${second}`)).toEqual([
      expect.objectContaining({ line: 20, field: 'rules[1].name' }),
    ]);
  });
});

describe('roles', () => {
  test.each([
    ['cluster-admin', 'clusterRole: cluster-admin'],
    ['admin', 'clusterRole: admin'],
    ['edit', 'clusterRole: edit'],
    ['Cluster-Admin (any case)', 'clusterRole: Cluster-Admin'],
    ['a system: role', 'clusterRole: "system:controller:generic-garbage-collector"'],
    ['a namespaced Role called admin', 'role: admin'],
  ])('the named role %s is refused', (_name, def) => {
    expect(issues(withLine(4, `  deployer: { ${def} }`))).toEqual([
      expect.objectContaining({
        line: 4,
        field: expect.stringMatching(/^roles\.deployer\.(clusterRole|role)$/),
      }),
    ]);
  });

  test('a role with two kinds at once is refused', () => {
    expect(issues(withLine(4, '  deployer: { clusterRole: a, role: b }'))).toEqual([
      expect.objectContaining({
        line: 4,
        field: 'roles.deployer',
        message: expect.stringContaining('exactly one of'),
      }),
    ]);
  });

  test('a role name that is not a DNS label is refused', () => {
    expect(issues(withLine(4, '  Deployer: { clusterRole: x }'))).toEqual(
      expect.arrayContaining([expect.objectContaining({ line: 4, field: 'roles.Deployer' })]),
    );
  });

  test('inline rules need apiGroups, resources and verbs', () => {
    expect(issues(withLine(7, '      - apiGroups: []'))).toEqual([
      expect.objectContaining({ line: 7, field: 'roles.viewer.rules[0].apiGroups' }),
    ]);
    expect(issues(withLine(9, ''))).toEqual([
      expect.objectContaining({
        line: 7,
        field: 'roles.viewer.rules[0]',
        message: 'missing required field "verbs"',
      }),
    ]);
  });

  test('nonResourceURLs are not accepted in inline (namespaced) rules', () => {
    expect(issues(withLine(9, '        verbs: [get]\n        nonResourceURLs: ["/metrics"]'))).toEqual([
      expect.objectContaining({ line: 10, field: 'roles.viewer.rules[0].nonResourceURLs' }),
    ]);
  });
});

describe('dangerous permissions in inline roles are refused at load', () => {
  const DANGEROUS: [string, string, string, string][] = [
    ['wildcard verbs', '""', 'pods', '"*"'],
    ['wildcard resources', '""', '"*"', 'get'],
    ['wildcard subresources', '""', '"pods/*"', 'get'],
    ['a wildcard API group', '"*"', 'pods', 'get'],
    ['reading secrets', '""', 'secrets', 'get'],
    ['listing secrets', '""', 'secrets', 'list'],
    ['watching secrets', '""', 'secrets', 'watch'],
    ['creating secrets', '""', 'secrets', 'create'],
    ['pods/exec', '""', 'pods/exec', 'create'],
    ['pods/attach', '""', 'pods/attach', 'create'],
    ['pods/portforward', '""', 'pods/portforward', 'create'],
    ['pods/ephemeralcontainers', '""', 'pods/ephemeralcontainers', 'patch'],
    ['pods/proxy', '""', 'pods/proxy', 'get'],
    ['nodes/proxy', '""', 'nodes/proxy', 'get'],
    ['nodes', '""', 'nodes', 'list'],
    ['serviceaccounts/token', '""', 'serviceaccounts/token', 'create'],
    ['persistentvolumes', '""', 'persistentvolumes', 'create'],
    ['impersonate', '""', 'users', 'impersonate'],
    ['escalate', 'rbac.authorization.k8s.io', 'roles', 'escalate'],
    ['bind', 'rbac.authorization.k8s.io', 'clusterroles', 'bind'],
    ['writing rolebindings', 'rbac.authorization.k8s.io', 'rolebindings', 'create'],
    ['writing roles', 'rbac.authorization.k8s.io', 'roles', 'patch'],
    ['writing clusterrolebindings', 'rbac.authorization.k8s.io', 'clusterrolebindings', 'update'],
    ['CSR approval', 'certificates.k8s.io', 'certificatesigningrequests/approval', 'update'],
    ['approving for a signer', 'certificates.k8s.io', 'signers', 'approve'],
    ['writing mutating webhooks', 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'create'],
    [
      'writing validating webhooks',
      'admissionregistration.k8s.io',
      'validatingwebhookconfigurations',
      'delete',
    ],
    ['patching namespaces (Pod Security labels)', '""', 'namespaces', 'patch'],
    ['writing CRDs', 'apiextensions.k8s.io', 'customresourcedefinitions', 'create'],
    ['patching pods (swapping the image of a running pod)', '""', 'pods', 'patch'],
    ['updating pods', '""', 'pods', 'update'],
    ['binding pods to nodes', '""', 'pods/binding', 'create'],
    ['bindings', '""', 'bindings', 'create'],
    ['writing endpoints', '""', 'endpoints', 'update'],
    ['writing endpointslices', 'discovery.k8s.io', 'endpointslices', 'create'],
    ['writing serviceaccounts', '""', 'serviceaccounts', 'create'],
    ['writing networkpolicies', 'networking.k8s.io', 'networkpolicies', 'delete'],
    // The controller route (issue 24): what a controller rebuilds pods from, and what it acts on.
    ['forging controllerrevisions', 'apps', 'controllerrevisions', 'create'],
    ['deleting controllerrevisions', 'apps', 'controllerrevisions', 'delete'],
    ['controllerrevisions in the old extensions group', 'extensions', 'controllerrevisions', 'patch'],
    ['statefulsets/status (currentRevision)', 'apps', 'statefulsets/status', 'patch'],
    ['daemonsets/status', 'apps', 'daemonsets/status', 'update'],
    ['deployments/status', 'apps', 'deployments/status', 'patch'],
    ['replicasets/status', 'apps', 'replicasets/status', 'update'],
    ['replicationcontrollers/status', '""', 'replicationcontrollers/status', 'patch'],
    ['jobs/status', 'batch', 'jobs/status', 'patch'],
    ['cronjobs/status', 'batch', 'cronjobs/status', 'update'],
    ['services/status (load-balancer IPs)', '""', 'services/status', 'patch'],
    ['ingresses/status', 'networking.k8s.io', 'ingresses/status', 'update'],
    ['pods/status (pod IPs in EndpointSlices)', '""', 'pods/status', 'patch'],
    ['resourceclaims/status (device allocation)', 'resource.k8s.io', 'resourceclaims/status', 'update'],
    ["any other resource's status", 'example.com', 'widgets/status', 'create'],
    ['a status under a wildcard', 'apps', '"*/status"', 'patch'],
  ];

  test.each(DANGEROUS)('%s', (_name, group, resource, verb) => {
    const text = withLine(
      9,
      `        verbs: [get]\n      - apiGroups: [${group}]\n        resources: [${resource}]\n        verbs: [${verb}]`,
    );
    const found = issues(text);
    expect(found).toEqual([
      expect.objectContaining({
        line: 10,
        field: 'roles.viewer.rules[1]',
        message: expect.stringContaining('jobs may never be granted this'),
      }),
    ]);
  });

  test('a policy with a dangerous role is refused even if no rule uses the role', () => {
    const text = withLine(8, '        resources: [secrets]').replace(
      'roles: [deployer, viewer]',
      'roles: [deployer]',
    );
    expect(issues(text)).toHaveLength(1);
  });
});

describe('findDangerousRules (the check for named roles)', () => {
  test('returns nothing for harmless rules', () => {
    expect(
      findDangerousRules([
        { apiGroups: [''], resources: ['pods', 'pods/log', 'configmaps'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['create', 'patch', 'delete'] },
        { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['get', 'list'] },
        // Reading what controllers report and keep is fine; only writing it is refused.
        {
          apiGroups: ['apps', ''],
          resources: ['controllerrevisions', 'statefulsets/status', 'services/status', 'pods/status'],
          verbs: ['get', 'list', 'watch'],
        },
      ]),
    ).toEqual([]);
  });

  test('names each offending rule by index, and is not fooled by capitals or other API groups', () => {
    const findings = findDangerousRules([
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
      { apiGroups: ['example.com'], resources: ['Secrets'], verbs: ['GET'] },
      { apiGroups: [''], resources: ['pods/exec'], verbs: ['create'], resourceNames: ['one-pod'] },
    ]);
    expect(findings).toHaveLength(2);
    expect(findings[0]).toMatch(/^rules\[1\] .*Secrets/);
    expect(findings[1]).toMatch(/^rules\[2\] .*runs commands/);
  });

  test('a malformed rule counts as dangerous', () => {
    expect(
      findDangerousRules([{ apiGroups: [''], resources: 'secrets', verbs: ['get'] } as never]),
    ).toHaveLength(1);
  });
});

describe('loadPolicy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('reports the path of a missing file', () => {
    expect(() => loadPolicy(join(dir, 'missing.yaml'))).toThrow(
      /missing\.yaml: cannot read the policy file \(ENOENT\)/,
    );
  });

  test('uses the path in line-precise errors', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, withLine(15, '      ref: main'));
    expect(() => loadPolicy(file)).toThrow(`${file}:15: rules[0].match.ref:`);
  });
});

describe('several issuers: every rule pins its issuer', () => {
  const GHES = 'https://ghes.example.com/_services/token';
  const GITHUB = 'https://token.actions.githubusercontent.com';
  const issuers = [GITHUB, GHES];
  const parse = (text: string) => parsePolicy(text, 'policy.yaml', { issuers });

  test('with two issuers, a rule without iss is refused at its match line', () => {
    try {
      parse(BASE);
      throw new Error('policy was accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues).toEqual([
        expect.objectContaining({
          line: 12,
          field: 'rules[0].match',
          message: expect.stringContaining('must pin "iss"'),
        }),
      ]);
    }
  });

  test('an iss the broker does not trust is refused', () => {
    expect(() =>
      parse(withLine(15, `      ref: refs/heads/main\n      iss: https://other.example.com`)),
    ).toThrow(/is not one of the issuers the broker trusts/);
  });

  test('a pinned rule grants only to its issuer, though the IDs collide on the other instance', () => {
    const policy = parse(withLine(15, `      ref: refs/heads/main\n      iss: ${GHES}`));
    const now = Math.floor(Date.now() / 1000);
    const claims = { ...defaultClaims(), aud: 'k8s-ephemeral-access', jti: 'j', iat: now, exp: now + 300 };
    const ask = { namespace: 'staging', role: 'deployer' };
    expect(policy.authorize({ ...claims, iss: GHES }, ask)).toMatchObject({ ruleName: 'web-deploys' });
    expect(() => policy.authorize({ ...claims, iss: GITHUB }, ask)).toThrow(
      expect.objectContaining({ reason: 'no_matching_rule' }),
    );
  });

  test('with one issuer, rules need not pin it', () => {
    expect(() => parsePolicy(BASE, 'policy.yaml', { issuers: [GITHUB] })).not.toThrow();
  });
});

describe('maxSessionSeconds (renewal)', () => {
  const withSession = (value: string) =>
    withLine(19, `    maxTtlSeconds: 900\n    maxSessionSeconds: ${value}`);

  test('absent: the rule grants no renewal; present: its limit reaches the engine', () => {
    expect(parsePolicy(BASE, 'policy.yaml').rules[0]!.maxSessionSeconds).toBeUndefined();
    const policy = parsePolicy(withSession('3600'), 'policy.yaml');
    expect(policy.rules[0]!.maxSessionSeconds).toBe(3600);
    const claims = defaultClaims() as unknown as VerifiedClaims;
    expect(policy.authorize(claims, { namespace: 'staging', role: 'deployer' }).maxSessionSeconds).toBe(3600);
  });

  test.each([
    ['600', 'must be at least maxTtlSeconds (900), got 600'],
    ['99999', 'must be between 60 and 21600, got 99999'],
    ['"1h"', 'must be a whole number between 60 and 21600'],
  ])('%s is refused on its own line', (value, message) => {
    const [issue] = issues(withSession(value));
    expect(issue).toMatchObject({ line: 20, field: 'rules[0].maxSessionSeconds' });
    expect(issue!.message).toContain(message);
  });
});
