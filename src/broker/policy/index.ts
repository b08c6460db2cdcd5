// The policy module's public surface: load a policy file into a PolicyEngine, and the
// dangerous-permission check that the Kubernetes side applies to named roles.
export {
  loadPolicy,
  loadPolicyVersion,
  parsePolicyVersion,
  readPolicyText,
  type PolicyVersion,
} from './load-policy.js';
export { parsePolicy, POLICY_API_VERSION } from './parse-policy.js';
export { findDangerousRules, forbiddenRoleNameProblem } from './dangerous.js';
export type { Policy, PolicyRule, RoleDefinition, RuleMatch, ValueMatcher, MatchField } from './types.js';
