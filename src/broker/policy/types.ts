// The policy as the engine uses it, after loading and validation (docs/policy.md describes the file).
import type { RuleSummary } from '../../shared/api.js';
import type { PolicyEngine } from '../types.js';

/** Claims a rule may match on. Only IDs identify a repository; names are never used. */
export const MATCH_FIELDS = [
  'iss',
  'repository_owner_id',
  'repository_id',
  'ref',
  'event_name',
  'environment',
  'job_workflow_ref',
  'runner_environment',
] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

/**
 * Fields where `{ glob: ... }` is accepted. IDs, issuers and event names are always exact, and so are
 * environments: anyone who can write to a repository can create an unprotected environment whose name
 * fits a pattern, while an exact name is the one whose protection rules the admin checked.
 */
export const GLOB_FIELDS: readonly MatchField[] = ['ref', 'job_workflow_ref'];

/** One accepted value: an exact string, or a glob written explicitly as `{ glob: "..." }`. */
export type ValueMatcher = { exact: string } | { glob: string };

/** Every listed field must match (AND); within a field any listed value may match (OR). */
export type RuleMatch = Partial<Record<MatchField, ValueMatcher[]>>;

export interface PolicyRule {
  name: string;
  /** `file:line` of the rule, for the audit trail and error messages. */
  source: string;
  match: RuleMatch;
  namespaces: string[];
  roles: string[];
  maxTtlSeconds: number;
  /** Client addresses the rule admits (canonical CIDRs); absent: any address. */
  sourceRanges?: string[];
  /** How long after its creation a grant of this rule may be renewed to; absent: not renewable. */
  maxSessionSeconds?: number;
  /** An inline role the gateway checks every forwarded call against, without enforcing it (shadow mode). */
  shadowRole?: string;
}

export type RoleDefinition =
  | { kind: 'ClusterRole'; name: string }
  | { kind: 'Role'; name: string }
  | { kind: 'Inline'; rules: RuleSummary[] };

export interface Policy extends PolicyEngine {
  readonly rules: PolicyRule[];
  /** By the name jobs ask for (the action's `role` input). */
  readonly roles: Readonly<Record<string, RoleDefinition>>;
}
