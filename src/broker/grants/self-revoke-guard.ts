// The self-revoke guard: the ValidatingAdmissionPolicy (deploy/self-revoke-guard.yaml) that lets a
// grant's ServiceAccount delete only its own ServiceAccount and its own RoleBindings. The shared
// self-revoke Role (shared-self-revoke.ts) allows deleting any ServiceAccount or RoleBinding of the
// namespace, so the broker binds it only while this guard is in place and enforcing; this module
// says whether the objects the API server holds are exactly that (a pure check, unit-tested on the
// deploy/ file), and what stands in the way when they are not.
import { GRANT_ID_PATTERN, REVOKE_SUFFIX, SELF_REVOKE_GUARD } from '../naming.js';

/** The fields of a ValidatingAdmissionPolicy the check reads (client-node's model or plain JSON). */
export interface GuardPolicy {
  metadata?: { name?: string; resourceVersion?: string };
  spec?: {
    failurePolicy?: string;
    paramKind?: unknown;
    matchConstraints?: MatchResources;
    matchConditions?: { name?: string; expression?: string }[];
    validations?: { expression?: string }[];
  };
}

export interface GuardBinding {
  metadata?: { name?: string; resourceVersion?: string };
  spec?: {
    policyName?: string;
    validationActions?: string[];
    paramRef?: unknown;
    matchResources?: MatchResources;
  };
}

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}
interface ResourceRule {
  apiGroups?: string[];
  apiVersions?: string[];
  operations?: string[];
  resources?: string[];
  resourceNames?: string[];
  scope?: string;
}
interface MatchResources {
  namespaceSelector?: Selector;
  objectSelector?: Selector;
  resourceRules?: ResourceRule[];
  excludeResourceRules?: ResourceRule[];
}

const grantUser = GRANT_ID_PATTERN.source.replace(/^\^/, '^system:serviceaccount:[a-z0-9.-]+:');

/** Only grant identities are checked; every other user and controller is untouched. */
export const GUARD_MATCH_CONDITION = {
  name: 'grant-identities-only',
  expression: `request.userInfo.username.matches('${grantUser}')`,
};

/** The caller's own ServiceAccount, or a RoleBinding named after it (access) or it + "-revoke". */
export const GUARD_VALIDATION = [
  "request.userInfo.username == 'system:serviceaccount:' + request.namespace + ':' + request.name ||",
  "(request.resource.resource == 'rolebindings' &&",
  ` request.userInfo.username + '${REVOKE_SUFFIX}' == 'system:serviceaccount:' + request.namespace + ':' + request.name)`,
].join(' ');

/** What the guard must cover: DELETE of these, in every API version. */
const GUARDED = [
  { group: '', resource: 'serviceaccounts' },
  { group: 'rbac.authorization.k8s.io', resource: 'rolebindings' },
];

/** CEL as YAML folds it: runs of whitespace are one space. */
const normal = (s: string | undefined) => (s ?? '').replace(/\s+/g, ' ').trim();

const isEmptySelector = (s: Selector | undefined) =>
  !s || (Object.keys(s.matchLabels ?? {}).length === 0 && (s.matchExpressions ?? []).length === 0);

const has = (list: string[] | undefined, value: string) =>
  !!list && (list.includes(value) || list.includes('*'));

const covers = (rule: ResourceRule, group: string, resource: string) =>
  has(rule.apiGroups, group) &&
  has(rule.resources, resource) &&
  has(rule.operations, 'DELETE') &&
  !!rule.apiVersions?.includes('*') &&
  (rule.resourceNames ?? []).length === 0 &&
  (rule.scope === undefined || rule.scope === '*' || rule.scope === 'Namespaced');

/** Whatever narrows what the policy or its binding match to less than every namespace and object. */
function narrowing(where: string, m: MatchResources | undefined, ownRules: boolean): string[] {
  const problems: string[] = [];
  if (!isEmptySelector(m?.namespaceSelector)) problems.push(`${where} has a namespaceSelector`);
  if (!isEmptySelector(m?.objectSelector)) problems.push(`${where} has an objectSelector`);
  if ((m?.excludeResourceRules ?? []).length > 0) problems.push(`${where} excludes resources`);
  if (!ownRules && (m?.resourceRules ?? []).length > 0) problems.push(`${where} narrows the resources`);
  return problems;
}

function policyProblems(policy: GuardPolicy): string[] {
  const spec = policy.spec ?? {};
  const problems: string[] = [];
  if (spec.failurePolicy !== 'Fail')
    problems.push(`failurePolicy is ${spec.failurePolicy ?? 'unset'}, not Fail`);
  if (spec.paramKind) problems.push('the policy takes parameters');
  problems.push(...narrowing('the policy', spec.matchConstraints, true));
  for (const { group, resource } of GUARDED)
    if (!(spec.matchConstraints?.resourceRules ?? []).some((r) => covers(r, group, resource)))
      problems.push(`the policy does not match DELETE of ${resource} in every version`);
  const conditions = (spec.matchConditions ?? []).map((c) => normal(c.expression));
  if (conditions.length !== 1 || conditions[0] !== normal(GUARD_MATCH_CONDITION.expression))
    problems.push('its matchConditions are not exactly the grant identities');
  if (!(spec.validations ?? []).some((v) => normal(v.expression) === normal(GUARD_VALIDATION)))
    problems.push('its validations lack the own-objects-only rule');
  return problems;
}

function bindingProblems(binding: GuardBinding): string[] {
  const spec = binding.spec ?? {};
  const problems: string[] = [];
  if (spec.policyName !== SELF_REVOKE_GUARD)
    problems.push(`the binding names policy ${spec.policyName ?? 'none'}`);
  if (!(spec.validationActions ?? []).includes('Deny'))
    problems.push(
      `the binding's validationActions are [${(spec.validationActions ?? []).join(', ')}], without Deny`,
    );
  if (spec.paramRef) problems.push('the binding passes parameters');
  problems.push(...narrowing('the binding', spec.matchResources, false));
  return problems;
}

/**
 * What keeps these objects from being the guard, enforcing: empty when the policy and its binding
 * (both named SELF_REVOKE_GUARD) deny, with failure policy Fail, every DELETE of a ServiceAccount
 * or RoleBinding by a grant identity except of its own objects, in every namespace.
 */
export function guardProblems(policy: GuardPolicy | undefined, binding: GuardBinding | undefined): string[] {
  return [
    ...(policy ? policyProblems(policy) : [`the ValidatingAdmissionPolicy ${SELF_REVOKE_GUARD} is missing`]),
    ...(binding
      ? bindingProblems(binding)
      : [`its ValidatingAdmissionPolicyBinding ${SELF_REVOKE_GUARD} is missing`]),
  ];
}
