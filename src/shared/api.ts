// The broker's HTTP contract, shared by the broker and the action so the two cannot drift.
// docs/api.md documents it for people; the bounds, codes and name rules are in contract.ts.
import type { ErrorCode, Reason } from './contract.js';

export const EXCHANGE_PATH = '/v1/exchange';
export const GRANTS_PATH = '/v1/grants';

/** The audience the broker expects by default; the action's `audience` input defaults to it. */
export const DEFAULT_AUDIENCE = 'k8s-ephemeral-access';

/** POST /v1/exchange, with `Authorization: Bearer <GitHub OIDC JWT>`. */
export interface ExchangeRequest {
  namespace: string;
  role: string;
  /** Requested grant lifetime in seconds; more than the policy rule's maximum is refused (403). */
  ttlSeconds?: number;
}

/** A single RBAC rule, as the job summary shows what the granted role allows. */
export interface RuleSummary {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface ExchangeResponse {
  grantId: string;
  /** The Kubernetes bearer token. Secret: mask it before anything could print it. */
  token: string;
  /** When the token itself expires (TokenRequest minimum 600 s). */
  tokenExpiresAt: string;
  /** When the broker revokes the grant at the latest; never later than tokenExpiresAt. */
  expiresAt: string;
  /** The API server's URL, or in gateway mode the broker gateway's. */
  server: string;
  /**
   * PEM of the server's CA, base64-encoded as in a kubeconfig's certificate-authority-data; empty
   * in gateway mode when the gateway's certificate is publicly trusted.
   */
  certificateAuthorityData: string;
  namespace: string;
  serviceAccount: string;
  role: string;
  /**
   * `gateway`: `server` is the broker's gateway and the token works there only (the API server
   * refuses it), so revoking needs a broker replica. `direct` (or absent, from older brokers): the
   * token works at the API server, where the grant may also revoke itself.
   */
  mode?: GrantMode;
  rules: RuleSummary[];
}

export type GrantMode = 'direct' | 'gateway';

/** Calls of one kind a grant made: what RBAC saw (never a body, never a credential). */
export interface UsedCall {
  verb: string;
  /** '' for the core group. */
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  /** The object names touched (at most a few dozen). */
  names: string[];
  calls: number;
}

/** One rule of the grant's role, and the calls it allowed. */
export interface RuleUsage {
  rule: RuleSummary;
  calls: number;
  used: UsedCall[];
}

/**
 * Where a grant's calls were counted. `gateway`: the gateway of the broker replica that revoked it
 * (calls through another replica's gateway are not in it). `audit-log`: direct mode, the API
 * server's audit log as the broker reads it at the revocation (every call, whichever replica).
 */
export type UsageSource = 'gateway' | 'audit-log';

/**
 * Why an audit-log count may miss calls: the log file begins after the grant did (rotated), or the
 * broker's bound on the bytes or the time it reads stopped before the grant's start.
 */
export type UsageGap = 'log-starts-after-grant' | 'read-limit';

/** Direct mode, why there is no count: the broker is given no audit log, or could not read it. */
export type UsageUnavailable = 'no-audit-log' | 'audit-log-unreadable';

/** What a grant did with its role (granted vs used), as `source` saw it. */
export interface GrantUsage {
  /** Absent from older brokers, which counted at the gateway only. */
  source?: UsageSource;
  /** Calls counted (allowed, refused and those with no RBAC answer). */
  calls: number;
  /** The role's rules with the calls each allowed; absent when they could not be read. */
  rules?: RuleUsage[];
  /** Allowed, but by none of the role's rules (another binding, or a non-resource URL). */
  unmatched: UsedCall[];
  /** 403: what the job tried and lacked. */
  refused: UsedCall[];
  /** The rule's shadowRole: the allowed calls it would have denied. */
  shadow?: { role: string; wouldDeny: UsedCall[]; wouldDenyCalls: number };
  /** More kinds of calls than are kept per grant: counts are complete, names and kinds are not. */
  truncated?: boolean;
  /** Audit log only: the calls from the grant's start up to some point are missing. */
  incomplete?: UsageGap;
}

/** DELETE /v1/grants/{grantId}, authenticated by the grant's own token or a fresh OIDC JWT of the same run. */
export interface RevokeResponse {
  grantId: string;
  revoked: boolean;
  /** The grant's calls: the gateway's count (gateway mode) or the API server's audit log (direct mode). */
  usage?: GrantUsage;
  /** Direct mode, when there is no `usage`: why. */
  usageUnavailable?: UsageUnavailable;
}

/** POST /v1/grants/{grantId}/renew: where a grant is renewed. */
export const renewPath = (grantId: string): string => `${GRANTS_PATH}/${encodeURIComponent(grantId)}/renew`;

/**
 * POST /v1/grants/{grantId}/renew, with `Authorization: Bearer <fresh GitHub OIDC JWT of the same
 * run>` and the grant's current Kubernetes token in the body: two proofs, the token that only the job
 * holding the grant has, and a JWT that the policy still accepts.
 */
export interface RenewRequest {
  grantToken: string;
  /** How long from now the grant should last; the matching rule's maximum when absent. */
  ttlSeconds?: number;
}

export interface RenewResponse {
  grantId: string;
  /** The token to use from now on: a new one when the old one would end first, else the same. Secret. */
  token: string;
  tokenExpiresAt: string;
  /** The grant's new end (never earlier than before, never after sessionEndsAt or tokenExpiresAt). */
  expiresAt: string;
  /** The grant's creation plus the rule's maxSessionSeconds: no renewal goes past it. */
  sessionEndsAt: string;
  /** Whether a new token was minted. */
  newToken: boolean;
}

/** Every non-2xx answer has this body. Messages are short and reveal nothing an attacker could use. */
export interface ErrorResponse {
  error: {
    code: ErrorCode;
    message: string;
    requestId?: string;
    /** Only from a broker with `explainRefusals: true`, and only one of CALLER_REASONS. */
    reason?: Reason;
    /**
     * With reason `ttl_exceeds_rule` only: the longest ttl the rules that allow this very request
     * (its claims, namespace and role) permit. The caller could find it by asking; it says nothing
     * about any other rule.
     */
    maxTtlSeconds?: number;
  };
}
