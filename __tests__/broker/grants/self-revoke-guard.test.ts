// The check the broker runs on the self-revoke guard before grants bind the shared self-revoke Role
// (src/broker/grants/self-revoke-guard.ts): deploy/self-revoke-guard.yaml as the API server returns
// it passes, and each way of weakening it (Warn, Ignore, narrower matches, a changed rule, a missing
// object) is named. The same objects are enforced by the real API server in
// __tests__/broker/grants/shared-self-revoke.cluster.test.ts.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import {
  guardProblems,
  type GuardBinding,
  type GuardPolicy,
} from '../../../src/broker/grants/self-revoke-guard.js';
import { repoRoot } from '../../../test/support/repo-root.js';

type Doc = { kind: string } & GuardPolicy & GuardBinding;
const docs = loadAll(readFileSync(join(repoRoot, 'deploy', 'self-revoke-guard.yaml'), 'utf8')) as Doc[];
const deployed = (kind: string) => JSON.parse(JSON.stringify(docs.find((d) => d.kind === kind))) as Doc;

/** The deploy/ objects with the defaults the API server fills in (as a read returns them). */
function asServed() {
  const policy = deployed('ValidatingAdmissionPolicy');
  const mc = policy.spec!.matchConstraints!;
  Object.assign(mc, { namespaceSelector: {}, objectSelector: {}, matchPolicy: 'Equivalent' });
  for (const r of mc.resourceRules!) r.scope = '*';
  const binding = deployed('ValidatingAdmissionPolicyBinding');
  binding.spec!.matchResources = { namespaceSelector: {}, objectSelector: {} };
  return { policy, binding };
}

test('deploy/self-revoke-guard.yaml is the guard, as written and as the API server serves it', () => {
  expect(
    guardProblems(deployed('ValidatingAdmissionPolicy'), deployed('ValidatingAdmissionPolicyBinding')),
  ).toEqual([]);
  const { policy, binding } = asServed();
  expect(guardProblems(policy, binding)).toEqual([]);
});

describe('anything weaker is not the guard', () => {
  const cases: [string, (p: GuardPolicy, b: GuardBinding) => void, RegExp][] = [
    ['the binding only warns', (_, b) => (b.spec!.validationActions = ['Warn']), /without Deny/],
    ['the binding only audits', (_, b) => (b.spec!.validationActions = ['Audit', 'Warn']), /without Deny/],
    ['failure policy Ignore', (p) => (p.spec!.failurePolicy = 'Ignore'), /failurePolicy is Ignore/],
    [
      'the binding spares some namespaces',
      (_, b) => (b.spec!.matchResources!.namespaceSelector = { matchLabels: { guarded: 'yes' } }),
      /binding has a namespaceSelector/,
    ],
    [
      'the policy spares some objects',
      (p) =>
        (p.spec!.matchConstraints!.objectSelector = {
          matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }],
        }),
      /policy has an objectSelector/,
    ],
    [
      'RoleBindings no longer matched',
      (p) => p.spec!.matchConstraints!.resourceRules!.splice(1, 1),
      /DELETE of rolebindings/,
    ],
    [
      'only one API version matched',
      (p) => (p.spec!.matchConstraints!.resourceRules![0]!.apiVersions = ['v1']),
      /DELETE of serviceaccounts in every version/,
    ],
    [
      'the binding excludes ServiceAccounts',
      (_, b) =>
        (b.spec!.matchResources!.excludeResourceRules = [
          { apiGroups: [''], apiVersions: ['*'], operations: ['DELETE'], resources: ['serviceaccounts'] },
        ]),
      /binding excludes resources/,
    ],
    [
      'an extra match condition',
      (p) => p.spec!.matchConditions!.push({ name: 'never', expression: 'false' }),
      /matchConditions/,
    ],
    [
      'a rule that lets any grant delete any RoleBinding',
      (p) => (p.spec!.validations![0]!.expression = "request.resource.resource == 'rolebindings' || true"),
      /own-objects-only/,
    ],
    ['parameters', (p) => (p.spec!.paramKind = { apiVersion: 'v1', kind: 'ConfigMap' }), /parameters/],
    ['a binding of another policy', (_, b) => (b.spec!.policyName = 'other'), /names policy other/],
  ];
  test.each(cases)('%s', (_, weaken, problem) => {
    const { policy, binding } = asServed();
    weaken(policy, binding);
    expect(guardProblems(policy, binding).join('; ')).toMatch(problem);
  });

  test('a missing policy or binding', () => {
    const { policy, binding } = asServed();
    expect(guardProblems(undefined, binding).join('; ')).toMatch(/ValidatingAdmissionPolicy .* is missing/);
    expect(guardProblems(policy, undefined).join('; ')).toMatch(/Binding .* is missing/);
  });

  test('more validations only deny more, and are accepted', () => {
    const { policy, binding } = asServed();
    policy.spec!.validations!.push({ expression: "request.name != 'x'" });
    expect(guardProblems(policy, binding)).toEqual([]);
  });
});
