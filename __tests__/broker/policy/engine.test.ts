// authorize(): default deny, each match field, namespace/role/TTL decisions, ref tricks, case and
// Unicode look-alikes (names never decide; IDs do), and risky events only when listed.
import { describe, expect, test } from '@jest/globals';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { policyYaml } from '../../../test/support/policy.js';
import { parsePolicy } from '../../../src/broker/policy/index.js';
import { BrokerError } from '../../../src/shared/errors.js';
import type { ExchangeRequest } from '../../../src/shared/api.js';
import type { VerifiedClaims } from '../../../src/broker/types.js';

const policy = parsePolicy(
  policyYaml({
    namespaces: ['staging'],
    roles: {
      deployer: { clusterRole: 'k8s-ea-deployer' },
      reader: { role: 'ci-reader' },
      viewer: { rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] },
    },
    rules: [
      {
        name: 'main-deploys',
        match: { event_name: ['push', 'workflow_dispatch'], runner_environment: 'github-hosted' },
        roles: ['deployer', 'viewer'],
      },
      { name: 'main-long-reads', maxTtlSeconds: 3600 },
      {
        name: 'production',
        match: {
          ref: undefined,
          environment: 'production',
          job_workflow_ref: { glob: 'octo-org/deploy/.github/workflows/deploy.yml@refs/tags/v*' },
        },
        namespaces: ['production'],
        roles: ['deployer'],
        maxTtlSeconds: 600,
      },
      {
        name: 'releases',
        match: { ref: [{ glob: 'refs/heads/release/**' }, { glob: 'refs/tags/v*' }] },
        roles: ['reader'],
        maxTtlSeconds: 600,
      },
      {
        name: 'features',
        match: { ref: { glob: 'refs/heads/feature/*' } },
        namespaces: ['dev'],
        maxTtlSeconds: 600,
      },
      {
        name: 'pr-target-opt-in',
        match: { repository_id: '555', event_name: 'pull_request_target' },
        namespaces: ['previews'],
        maxTtlSeconds: 300,
      },
    ],
  }),
  'policy.yaml',
);

function claims(overrides: Record<string, unknown> = {}): VerifiedClaims {
  const now = Math.floor(Date.now() / 1000);
  const base = {
    ...defaultClaims(),
    iss: 'https://token.actions.githubusercontent.com',
    aud: 'k8s-ephemeral-access',
    jti: 'j-1',
    iat: now,
    exp: now + 300,
  };
  return { ...base, ...overrides } as VerifiedClaims;
}

const deploy: ExchangeRequest = { namespace: 'staging', role: 'deployer' };

function refusal(c: VerifiedClaims, request: ExchangeRequest): { code: string; reason: string } {
  try {
    policy.authorize(c, request);
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    return { code: (err as BrokerError).code, reason: (err as BrokerError).reason };
  }
  throw new Error('request was allowed');
}
const denied = (reason: string) => ({ code: 'ERR_FORBIDDEN', reason });

describe('allowed requests', () => {
  test('a matching request gets the named ClusterRole for the rule maximum by default', () => {
    expect(policy.authorize(claims(), deploy)).toEqual({
      ruleName: 'main-deploys',
      namespace: 'staging',
      role: 'deployer',
      roleRef: { kind: 'ClusterRole', name: 'k8s-ea-deployer' },
      rules: [],
      ttlSeconds: 900,
    });
  });

  test('an inline role is returned with its rules, and a named Role as a Role', () => {
    const viewer = policy.authorize(claims(), { namespace: 'staging', role: 'viewer', ttlSeconds: 120 });
    const rules = [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }];
    expect(viewer.roleRef).toEqual({ kind: 'Inline', name: 'viewer', rules });
    expect(viewer.rules).toEqual(rules);
    expect(viewer.ttlSeconds).toBe(120);
    const reader = policy.authorize(claims({ ref: 'refs/heads/release/1.x' }), {
      namespace: 'staging',
      role: 'reader',
    });
    expect(reader.roleRef).toEqual({ kind: 'Role', name: 'ci-reader' });
  });

  test('the first rule that allows the requested TTL wins', () => {
    const short = policy.authorize(claims(), { namespace: 'staging', role: 'viewer', ttlSeconds: 900 });
    expect(short.ruleName).toBe('main-deploys');
    const long = policy.authorize(claims(), { namespace: 'staging', role: 'viewer', ttlSeconds: 3600 });
    expect(long).toMatchObject({ ruleName: 'main-long-reads', ttlSeconds: 3600 });
  });

  test('a TTL equal to the rule maximum is allowed', () => {
    expect(policy.authorize(claims(), { ...deploy, ttlSeconds: 900 }).ttlSeconds).toBe(900);
  });

  test('an environment-pinned rule with a pinned reusable workflow', () => {
    const c = claims({
      environment: 'production',
      ref: 'refs/tags/v1.4.0',
      job_workflow_ref: 'octo-org/deploy/.github/workflows/deploy.yml@refs/tags/v2',
    });
    expect(policy.authorize(c, { namespace: 'production', role: 'deployer' }).ruleName).toBe('production');
  });

  test('the returned grant cannot be used to change the policy', () => {
    const viewer = policy.authorize(claims(), { namespace: 'staging', role: 'viewer' });
    expect(() =>
      (viewer.rules as unknown[]).push({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }),
    ).toThrow(TypeError);
  });
});

/** One rule that pins every match field, so each mismatch can only mean "no rule matches". */
const strict = parsePolicy(
  policyYaml({
    namespaces: ['production'],
    roles: { deployer: { clusterRole: 'k8s-ea-deployer' } },
    rules: [
      {
        name: 'everything-pinned',
        match: {
          event_name: ['push', 'workflow_dispatch'],
          environment: 'production',
          job_workflow_ref: { glob: 'octo-org/deploy/.github/workflows/deploy.yml@refs/tags/v*' },
          runner_environment: 'github-hosted',
        },
        roles: ['deployer'],
        maxTtlSeconds: 600,
      },
    ],
  }),
  'strict.yaml',
);

describe('default deny: each match field must match', () => {
  const pinned = (overrides: Record<string, unknown> = {}) =>
    claims({
      environment: 'production',
      job_workflow_ref: 'octo-org/deploy/.github/workflows/deploy.yml@refs/tags/v2',
      ...overrides,
    });
  const request = { namespace: 'production', role: 'deployer' };

  test('the fully pinned rule allows the matching claims', () => {
    expect(strict.authorize(pinned(), request).ruleName).toBe('everything-pinned');
    expect(strict.authorize(pinned({ event_name: 'workflow_dispatch' }), request).ruleName).toBe(
      'everything-pinned',
    );
  });

  test.each([
    ['another owner ID', { repository_owner_id: '987655' }],
    ['another repository ID', { repository_id: '123456780' }],
    ['another branch', { ref: 'refs/heads/dev' }],
    ['a tag with the branch name', { ref: 'refs/tags/main' }],
    ['another event', { event_name: 'pull_request' }],
    ['a self-hosted runner', { runner_environment: 'self-hosted' }],
    ['no runner_environment claim', { runner_environment: undefined }],
    ['no environment claim', { environment: undefined }],
    ['another environment', { environment: 'staging' }],
    ['an environment with different case', { environment: 'Production' }],
    ['no job_workflow_ref claim', { job_workflow_ref: undefined }],
    [
      'an unpinned reusable workflow',
      { job_workflow_ref: 'octo-org/other/.github/workflows/deploy.yml@refs/tags/v2' },
    ],
    [
      'the workflow from a branch',
      { job_workflow_ref: 'octo-org/deploy/.github/workflows/deploy.yml@refs/heads/main' },
    ],
    [
      'the workflow from another owner',
      { job_workflow_ref: 'octo-org-fork/deploy/.github/workflows/deploy.yml@refs/tags/v2' },
    ],
    [
      'a workflow path trick',
      { job_workflow_ref: 'octo-org/deploy/.github/workflows/../x.yml@refs/tags/v2' },
    ],
  ])('%s → no_matching_rule', (_name, overrides) => {
    let reason: string | undefined;
    try {
      strict.authorize(pinned(overrides), request);
    } catch (err) {
      reason = (err as BrokerError).reason;
    }
    expect(reason).toBe('no_matching_rule');
  });

  test('claims of the wrong type never match (defence in depth behind the verifier)', () => {
    expect(refusal(claims({ repository_id: 123456789 }), deploy)).toEqual(denied('no_matching_rule'));
    expect(refusal(claims({ ref: ['refs/heads/main'] }), deploy)).toEqual(denied('no_matching_rule'));
  });
});

describe('namespace, role and TTL', () => {
  test('a namespace no matching rule lists → namespace_not_allowed', () => {
    expect(refusal(claims(), { namespace: 'production', role: 'deployer' })).toEqual(
      denied('namespace_not_allowed'),
    );
    expect(refusal(claims(), { namespace: 'Staging', role: 'deployer' })).toEqual(
      denied('namespace_not_allowed'),
    );
  });

  test('a role the rule does not list → role_not_allowed, even if the policy defines it', () => {
    expect(refusal(claims(), { namespace: 'staging', role: 'reader' })).toEqual(denied('role_not_allowed'));
    expect(refusal(claims(), { namespace: 'staging', role: 'cluster-admin' })).toEqual(
      denied('role_not_allowed'),
    );
  });

  test('a TTL above every allowing rule → ttl_exceeds_rule', () => {
    expect(refusal(claims(), { ...deploy, ttlSeconds: 901 })).toEqual(denied('ttl_exceeds_rule'));
    expect(refusal(claims(), { ...deploy, ttlSeconds: Number.MAX_SAFE_INTEGER })).toEqual(
      denied('ttl_exceeds_rule'),
    );
  });

  test('ttl_exceeds_rule carries the longest ttl of the rules allowing this request, and of no other rule', () => {
    const maxOf = (request: ExchangeRequest) => {
      try {
        policy.authorize(claims(), request);
      } catch (err) {
        return (err as BrokerError).maxTtlSeconds;
      }
      throw new Error('request was allowed');
    };
    // deployer in staging: main-deploys only (900); main-long-reads' 3600 is for viewer alone.
    expect(maxOf({ ...deploy, ttlSeconds: 901 })).toBe(900);
    expect(maxOf({ namespace: 'staging', role: 'viewer', ttlSeconds: 4000 })).toBe(3600);
    // Other refusals carry none.
    expect(maxOf({ namespace: 'staging', role: 'reader', ttlSeconds: 4000 })).toBeUndefined();
  });

  test('a TTL below 60 s or not a whole number is a bad request', () => {
    expect(refusal(claims(), { ...deploy, ttlSeconds: 59 })).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'ttl_too_short',
    });
    expect(refusal(claims(), { ...deploy, ttlSeconds: 0 })).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'ttl_too_short',
    });
    expect(refusal(claims(), { ...deploy, ttlSeconds: 120.5 })).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'ttl_invalid',
    });
    expect(refusal(claims(), { ...deploy, ttlSeconds: '900' as unknown as number })).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'ttl_invalid',
    });
  });
});

describe('globs and ref tricks', () => {
  test.each([
    ['refs/heads/release/1.x', true],
    ['refs/heads/release/2024/q3', true],
    ['refs/tags/v1.2.3', true],
    ['refs/heads/release', false],
    ['refs/heads/release/', false],
    ['refs/heads/release//x', false],
    ['refs/heads/release/../main', false],
    ['refs/heads/release/./x', false],
    ['refs/heads/release/.hidden', false],
    ['refs/heads/release/x.lock', false],
    ['refs/heads/release/a b', false],
    ['refs/heads/release/a~1', false],
    ['refs/heads/release/x@{0}', false],
    ['refs/heads/release/x\u0000', false],
    ['heads/release/1.x', false],
    ['refs/tags/v1/../../heads/main', false],
    ['refs/tags/x/v1', false],
  ])('release rule and ref %j → %s', (ref, allowed) => {
    const request = { namespace: 'staging', role: 'reader' };
    if (allowed) expect(policy.authorize(claims({ ref }), request).ruleName).toBe('releases');
    else expect(refusal(claims({ ref }), request)).toEqual(denied('no_matching_rule'));
  });

  test('* does not cross "/" in a ref', () => {
    const request = { namespace: 'dev', role: 'viewer' };
    expect(policy.authorize(claims({ ref: 'refs/heads/feature/login' }), request).ruleName).toBe('features');
    expect(refusal(claims({ ref: 'refs/heads/feature/login/evil' }), request)).toEqual(
      denied('no_matching_rule'),
    );
  });

  test('exact refs are compared exactly: path tricks, case and look-alikes do not match', () => {
    for (const ref of [
      'refs/heads/main/../main',
      'refs/heads/main/',
      'refs/heads/Main',
      'REFS/HEADS/MAIN',
      'refs/heads/m\u0430in', // Cyrillic a
      'refs/heads/main\u200b', // zero-width space
      ' refs/heads/main',
    ]) {
      expect(refusal(claims({ ref }), deploy)).toEqual(denied('no_matching_rule'));
    }
  });

  test('event names are compared exactly', () => {
    expect(refusal(claims({ event_name: 'Push' }), deploy)).toEqual(denied('no_matching_rule'));
  });
});

describe('identity comes from IDs, never from names', () => {
  test('a renamed owner or repository (same IDs) is still allowed', () => {
    const c = claims({ repository: 'renamed-org/renamed-repo', repository_owner: 'renamed-org' });
    expect(policy.authorize(c, deploy).ruleName).toBe('main-deploys');
  });

  test('a look-alike repository name does not matter: the IDs decide both ways', () => {
    // Greek omicron in the owner name: irrelevant while the IDs are right ...
    const lookAlike = claims({ repository: 'octo-\u03bfrg/octo-repo', repository_owner: 'octo-\u03bfrg' });
    expect(policy.authorize(lookAlike, deploy).ruleName).toBe('main-deploys');
    // ... and the exact original name with someone else's IDs (a re-registered name) is refused.
    const squatter = claims({
      repository: 'octo-org/octo-repo',
      repository_owner_id: '31337',
      repository_id: '4242',
    });
    expect(refusal(squatter, deploy)).toEqual(denied('no_matching_rule'));
  });
});

describe('risky events only where a rule lists them literally', () => {
  test.each(['pull_request_target', 'workflow_run', 'issue_comment'])(
    '%s on main does not satisfy a rule that lists push',
    (event_name) => {
      expect(refusal(claims({ event_name }), deploy)).toEqual(denied('no_matching_rule'));
    },
  );

  test('pull_request_target is allowed where a rule lists it', () => {
    const c = claims({ repository_id: '555', event_name: 'pull_request_target' });
    expect(policy.authorize(c, { namespace: 'previews', role: 'viewer' }).ruleName).toBe('pr-target-opt-in');
  });
});
