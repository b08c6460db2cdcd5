// Kubernetes RBAC rule semantics, in memory: does a set of PolicyRules allow one request? The same
// decisions as the API server's RBAC authorizer (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac,
// RuleAllows and the helpers of pkg/apis/rbac/v1): exact, case-sensitive strings; `*` in verbs,
// apiGroups and resources; `*/<subresource>` for that subresource of any resource (while
// `pods/*` is a literal that matches nothing); `resourceNames` only for requests that name an object
// (a list or create never matches a rule with names); non-resource URLs with a trailing `*` as a
// prefix. A namespaced Role's rules apply only to requests in its namespace. Used by shadow mode and
// by the per-run usage report; a cluster test checks it against the API server's authorizer.

/** One RBAC PolicyRule, as a Role or ClusterRole holds it. */
export interface RbacRule {
  verbs: readonly string[];
  apiGroups?: readonly string[];
  resources?: readonly string[];
  resourceNames?: readonly string[];
  nonResourceURLs?: readonly string[];
}

/** A request to a resource (`resource` set) or to a non-resource URL (`path` set). */
export interface RbacRequest {
  verb: string;
  apiGroup?: string;
  resource?: string;
  subresource?: string;
  /** Absent or '' for a cluster-scoped request. */
  namespace?: string;
  name?: string;
  /** A non-resource URL (`/healthz`); only ClusterRoles bound cluster-wide can allow one. */
  path?: string;
}

/** Rules and where they apply: a Role (or a RoleBinding's ClusterRole) in one namespace, or everywhere. */
export interface ScopedRules {
  /** Absent: bound cluster-wide (a ClusterRoleBinding). */
  namespace?: string;
  rules: readonly RbacRule[];
}

const ALL = '*';

const verbMatches = (rule: RbacRule, verb: string): boolean =>
  rule.verbs.some((v) => v === ALL || v === verb);

const groupMatches = (rule: RbacRule, group: string): boolean =>
  (rule.apiGroups ?? []).some((g) => g === ALL || g === group);

function resourceMatches(rule: RbacRule, combined: string, subresource: string): boolean {
  return (rule.resources ?? []).some(
    (r) => r === ALL || r === combined || (subresource !== '' && r === `*/${subresource}`),
  );
}

const nameMatches = (rule: RbacRule, name: string): boolean =>
  rule.resourceNames === undefined || rule.resourceNames.length === 0 || rule.resourceNames.includes(name);

function urlMatches(rule: RbacRule, path: string): boolean {
  return (rule.nonResourceURLs ?? []).some(
    (u) => u === ALL || u === path || (u.endsWith(ALL) && path.startsWith(u.replace(/\*+$/, ''))),
  );
}

/** Whether this one rule allows the request (binding scope aside). */
export function ruleAllows(rule: RbacRule, request: RbacRequest): boolean {
  if (!verbMatches(rule, request.verb)) return false;
  if (request.path !== undefined) return urlMatches(rule, request.path);
  const subresource = request.subresource ?? '';
  const resource = request.resource ?? '';
  const combined = subresource === '' ? resource : `${resource}/${subresource}`;
  return (
    groupMatches(rule, request.apiGroup ?? '') &&
    resourceMatches(rule, combined, subresource) &&
    nameMatches(rule, request.name ?? '')
  );
}

/** Whether rules bound in this scope can apply to the request at all. */
export function scopeApplies(scope: ScopedRules, request: RbacRequest): boolean {
  if (scope.namespace === undefined) return true;
  // A RoleBinding never grants a non-resource URL nor a cluster-scoped request.
  return (
    request.path === undefined && (request.namespace ?? '') === scope.namespace && scope.namespace !== ''
  );
}

/** The index of the first rule of the scope that allows the request, or -1. */
export function allowingRuleIndex(scope: ScopedRules, request: RbacRequest): number {
  if (!scopeApplies(scope, request)) return -1;
  return scope.rules.findIndex((rule) => ruleAllows(rule, request));
}

/** Whether any of the scopes (every binding of one subject) allows the request. */
export function rbacAllows(scopes: readonly ScopedRules[], request: RbacRequest): boolean {
  return scopes.some((scope) => allowingRuleIndex(scope, request) >= 0);
}
