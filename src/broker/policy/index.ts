// The policy module's public surface: load a policy file into a PolicyEngine, and the
// dangerous-permission check that the Kubernetes side can also apply to named roles.
export { loadPolicy } from './load-policy.js';
export { parsePolicy, POLICY_API_VERSION, MIN_TTL_SECONDS, MAX_TTL_SECONDS } from './parse-policy.js';
export { findDangerousRules, forbiddenRoleNameProblem } from './dangerous.js';
export { MIN_REQUEST_TTL_SECONDS } from './engine.js';
export type { Policy, PolicyRule, RoleDefinition, RuleMatch, ValueMatcher, MatchField } from './types.js';
