// Granted vs used and shadow mode without a cluster: the recorder's counting, bounds and shadow
// evaluation (usage/usage-recorder.ts), the report against a role's rules (usage-report.ts), the
// job summary (action/usage-summary.ts) and shadowRole in the policy file.
import { describe, expect, test } from '@jest/globals';
import type { ApiCall } from '../../../src/broker/usage/api-call.js';
import { UsageRecorder } from '../../../src/broker/usage/usage-recorder.js';
import { usageReport } from '../../../src/broker/usage/usage-report.js';
import { apiCallOf } from '../../../src/broker/usage/grant-usage.js';
import { renderUsageSummary } from '../../../src/action/usage-summary.js';
import { parsePolicy } from '../../../src/broker/policy/index.js';
import { ConfigError } from '../../../src/broker/yaml-fields/config-error.js';
import { policyYaml } from '../../../test/support/policy.js';

const grant = { grantId: 'k8s-ea-1', namespace: 'ci', ruleName: 'deploys' };
const call = (verb: string, resource: string | undefined, extra: Partial<ApiCall> = {}): ApiCall => ({
  verb,
  apiGroup: '',
  resource,
  namespace: 'ci',
  status: 200,
  ...extra,
});
const READ_CONFIGMAPS = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }];

describe('the recorder', () => {
  test('counts per kind and outcome, and forgets the grant once taken', () => {
    const r = new UsageRecorder();
    r.record(grant, call('get', 'configmaps', { name: 'a' }));
    r.record(grant, call('get', 'configmaps', { name: 'a' }));
    r.record(grant, call('list', 'secrets', { status: 403 }));
    r.record(grant, call('get', 'pods', { status: 429 }));
    const taken = r.take('k8s-ea-1')!;
    expect(taken.calls).toBe(4);
    expect(taken.kinds.map((k) => [k.verb, k.resource, k.outcome, k.calls])).toEqual([
      ['get', 'configmaps', 'allowed', 2],
      ['list', 'secrets', 'refused', 1],
      ['get', 'pods', 'unknown', 1],
    ]);
    expect(r.take('k8s-ea-1')).toBeUndefined();
  });

  test('bounded: kinds past the cap only count; the oldest grant goes past the grant cap', () => {
    const r = new UsageRecorder({ maxKinds: 2, maxGrants: 2 });
    for (const name of ['a', 'b', 'c']) r.record(grant, call('get', 'configmaps', { name }));
    const taken = r.take('k8s-ea-1')!;
    expect([taken.calls, taken.kinds.length, taken.truncated]).toEqual([3, 2, true]);
    for (const id of ['g1', 'g2', 'g3']) r.record({ ...grant, grantId: id }, call('get', 'pods'));
    expect([r.size, r.take('g1'), r.take('g3')?.calls]).toEqual([2, undefined, 1]);
  });

  test('shadow: allowed calls outside the shadow role would be denied; refused ones, discovery and self reviews never', () => {
    const told: string[] = [];
    const r = new UsageRecorder({
      shadowRole: (rule) => (rule === 'deploys' ? { role: 'reader', rules: READ_CONFIGMAPS } : undefined),
      onWouldDeny: (_g, c) => told.push(`${c.verb} ${c.resource}`),
    });
    r.record(grant, call('get', 'configmaps'));
    r.record(grant, call('patch', 'configmaps', { name: 'a' }));
    r.record(grant, call('delete', 'pods', { name: 'p', status: 403 }));
    r.record(grant, call('get', undefined));
    r.record(
      grant,
      call('create', 'selfsubjectreviews', { apiGroup: 'authentication.k8s.io', namespace: undefined }),
    );
    // The shadow role applies in the grant's namespace only, as its Role would.
    r.record(grant, call('get', 'configmaps', { namespace: 'other' }));
    r.record({ ...grant, ruleName: 'other-rule' }, call('patch', 'configmaps'));
    expect(told).toEqual(['patch configmaps', 'get configmaps']);
    expect(r.take('k8s-ea-1')!.shadow).toEqual({ role: 'reader', wouldDenyCalls: 2 });
  });

  test('the API group comes from the path; a non-resource URL has no resource', () => {
    expect(
      apiCallOf(
        { verb: 'patch', resource: 'deployments', name: 'w' },
        '/apis/apps/v1/namespaces/ci/deployments/w',
        200,
      ),
    ).toMatchObject({ apiGroup: 'apps', resource: 'deployments' });
    expect(apiCallOf({ verb: 'get', resource: 'v1' }, '/version', 200)).toMatchObject({
      apiGroup: '',
      resource: undefined,
    });
  });
});

describe('the report', () => {
  const rules = [
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] },
    { apiGroups: ['apps'], resources: ['deployments'], verbs: ['patch'], resourceNames: ['web'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['delete'] },
  ];

  test('each rule with the calls it allowed, the unused ones, the refused calls and what no rule explains', () => {
    const r = new UsageRecorder();
    r.record(grant, call('get', 'configmaps', { name: 'a' }));
    r.record(grant, call('get', 'configmaps', { name: 'b' }));
    r.record(grant, call('patch', 'deployments', { apiGroup: 'apps', name: 'web' }));
    r.record(grant, call('list', 'secrets', { status: 403 }));
    r.record(grant, call('get', undefined));
    const report = usageReport(r.take('k8s-ea-1')!, 'ci', rules);
    expect(report.rules!.map((u) => [u.calls, u.used.map((c) => [c.verb, c.names])])).toEqual([
      [2, [['get', ['a', 'b']]]],
      [1, [['patch', ['web']]]],
      [0, []],
    ]);
    expect(report.refused.map((c) => [c.verb, c.resource])).toEqual([['list', 'secrets']]);
    expect(report.unmatched.map((c) => [c.verb, c.resource])).toEqual([['get', '']]);
  });

  test('the job summary: rules used and never used, refused calls, shadow; every value escaped', () => {
    const r = new UsageRecorder({ shadowRole: () => ({ role: 'reader', rules: READ_CONFIGMAPS }) });
    r.record(grant, call('get', 'configmaps', { name: 'a|<b>' }));
    r.record(grant, call('patch', 'deployments', { apiGroup: 'apps', name: 'web' }));
    r.record(grant, call('list', 'secrets', { status: 403 }));
    const md = renderUsageSummary(usageReport(r.take('k8s-ea-1')!, 'ci', rules));
    expect(md).toContain(
      '| (core) | configmaps | get, list | any | `get` configmaps `a&#124;&#60;b&#62;`: 1 call |',
    );
    expect(md).toContain('| (core) | pods | delete | any | **never used** |');
    expect(md).toContain('1 rule of 3 never used.');
    expect(md).toContain('### Refused (403): tried and not allowed\n\n- `list` secrets: 1 call');
    expect(md).toContain(
      '### Shadow role `reader`: 1 call it would deny\n\n- `patch` deployments (apps) `web`: 1 call',
    );
  });
});

describe('shadowRole in the policy', () => {
  const spec = (shadowRole: string, roles: Record<string, unknown>, granted = ['deployer']) =>
    policyYaml({
      namespaces: ['ci'],
      roles: { deployer: { clusterRole: 'k8s-ea-deployer' }, ...roles } as never,
      rules: [{ roles: granted, shadowRole }],
    });
  const problems = (yaml: string) => {
    try {
      parsePolicy(yaml, 'policy.yaml');
      return [];
    } catch (err) {
      return (err as ConfigError).message.split('\n').filter((l) => l.includes('shadowRole'));
    }
  };

  test('an inline role of the policy, not granted by the rule: the engine hands out its rules', () => {
    const policy = parsePolicy(spec('reader', { reader: { rules: READ_CONFIGMAPS } }), 'policy.yaml');
    expect(policy.shadowRole?.('main-pushes')).toEqual({ role: 'reader', rules: READ_CONFIGMAPS });
    expect(policy.shadowRole?.('no-such-rule')).toBeUndefined();
  });

  test('refused: undefined, named (not inline), or granted by the same rule', () => {
    expect(problems(spec('nope', {}))).toEqual([
      expect.stringMatching(/shadowRole: role "nope" is not defined/),
    ]);
    expect(problems(spec('named', { named: { role: 'x' } }))).toEqual([
      expect.stringMatching(/must be an inline role/),
    ]);
    expect(problems(spec('deployer', {}))).toEqual([expect.stringMatching(/must be an inline role/)]);
    const reader = { reader: { rules: READ_CONFIGMAPS } };
    expect(problems(spec('reader', reader, ['deployer', 'reader']))).toEqual([
      expect.stringMatching(/is also granted by this rule/),
    ]);
  });
});
