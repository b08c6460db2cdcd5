// The broker's internal seams. Each module implements one of these; app wiring joins them.
import type { ExchangeRequest, RuleSummary } from '../shared/api.js';

/** One inline role of the policy in one namespace where a rule may grant it. */
export interface InlineRoleUse {
  namespace: string;
  /** The policy's role name (a DNS-1123 label). */
  role: string;
  rules: RuleSummary[];
}

/** Claims of a GitHub Actions OIDC token after signature and standard-claim checks passed. */
export interface VerifiedClaims {
  iss: string;
  aud: string | string[];
  jti: string;
  exp: number;
  iat: number;
  repository_id: string;
  repository_owner_id: string;
  repository: string;
  repository_owner: string;
  run_id: string;
  run_attempt: string;
  ref: string;
  event_name: string;
  workflow?: string;
  job_workflow_ref?: string;
  sha?: string;
  actor?: string;
  environment?: string;
  runner_environment?: string;
  /** The job within the run (GitHub sends it since late 2025; older GHES may not). */
  check_run_id?: string;
  [claim: string]: unknown;
}

export interface TokenVerifier {
  /** Throws BrokerError (ERR_UNAUTHENTICATED / ERR_BAD_REQUEST / ERR_UNAVAILABLE) with a reason. */
  verify(jwt: string): Promise<VerifiedClaims>;
}

export type RoleRef =
  | { kind: 'ClusterRole'; name: string }
  | { kind: 'Role'; name: string }
  | { kind: 'Inline'; name: string; rules: RuleSummary[] };

/** A named role the policy binds, where it is bound: what the broker reads and keeps watching. */
export type NamedRole =
  { kind: 'ClusterRole'; name: string } | { kind: 'Role'; name: string; namespace: string };

export interface Grantable {
  /** The policy rule that allowed it, for the audit line. */
  ruleName: string;
  namespace: string;
  /** The role name the caller asked for, as the policy names it. */
  role: string;
  roleRef: RoleRef;
  /** What the role allows, for the job summary (empty when the broker cannot know, e.g. named roles it cannot read). */
  rules: RuleSummary[];
  ttlSeconds: number;
  /** The rule's total session limit for renewals; absent: the grant cannot be renewed. */
  maxSessionSeconds?: number;
}

export interface PolicyEngine {
  /**
   * Throws BrokerError ERR_FORBIDDEN with a reason when no rule allows the request. Default deny.
   * `clientAddress` is the request's (http/client-address.ts); absent means unknown, which no
   * rule with `sourceRanges` admits.
   */
  authorize(claims: VerifiedClaims, request: ExchangeRequest, clientAddress?: string): Grantable;
  /**
   * Whether the rule of this name (as a grant's ServiceAccount records it) admits this client
   * address now: the gateway asks on every request. False for a rule the policy no longer has.
   */
  sourceAllowed(ruleName: string, clientAddress: string | undefined): boolean;
  /** Every namespace the policy can grant into, sorted: where revocation and the reaper look. */
  namespaces(): readonly string[];
  /** Every named ClusterRole, and every named Role per namespace, that a rule can grant. */
  namedRoles(): readonly NamedRole[];
  /** Every inline role a rule can grant, per namespace: the shared Roles the broker keeps (grants/inline-roles.ts). */
  inlineRoles?(): readonly InlineRoleUse[];
}
