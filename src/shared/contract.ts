// The rules the action and the broker must agree on, written once: how long a grant may live, the
// error codes a refusal carries, the reasons the broker logs, and what a Kubernetes name looks like.
// docs/api.md, docs/policy.md, action.yml and the README state them for people;
// __tests__/docs/contract-docs.test.ts keeps that text in step with this file.

/**
 * A grant's lifetime in seconds. The maximum is the longest a GitHub-hosted job may run (6 h): no
 * policy rule may allow more, so the action refuses to ask for more.
 */
export const MIN_TTL_SECONDS = 60;
export const MAX_TTL_SECONDS = 6 * 3600;

/** The `code` of every non-2xx answer; it decides the HTTP status and the generic client message. */
export const ERROR_CODES = [
  'ERR_BAD_REQUEST',
  'ERR_UNAUTHENTICATED',
  'ERR_FORBIDDEN',
  'ERR_NOT_FOUND',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_RATE_LIMITED',
  'ERR_UNAVAILABLE',
  'ERR_INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);

/** Why the broker refused a request: in its log, audit lines and metrics, never sent to clients. */
export const REASONS = [
  // the request itself
  'body_too_large',
  'unsupported_media_type',
  'invalid_json',
  'invalid_request',
  'missing_bearer_token',
  'no_such_route',
  // the GitHub OIDC token
  'jwt_malformed',
  'jwt_oversized',
  'jwt_signature',
  'jwt_alg',
  'jwt_header',
  'jwt_unknown_kid',
  'jwt_issuer',
  'jwt_audience',
  'jwt_expired',
  'jwt_not_yet_valid',
  'jwt_lifetime',
  'jwt_claims',
  'jwt_invalid',
  'jwt_replayed',
  'jwks_unavailable',
  'rate_limited',
  // the policy
  'no_matching_rule',
  'namespace_not_allowed',
  'role_not_allowed',
  'ttl_exceeds_rule',
  'ttl_too_short',
  'ttl_invalid',
  'source_not_allowed',
  'policy_inconsistent',
  // a named role the policy binds, as the broker last saw it in the cluster
  'role_dangerous',
  'role_missing',
  // the cluster
  'grant_refused_by_cluster',
  'cluster_unavailable',
  // revocation
  'kubernetes_token_rejected',
  'grant_not_found',
  'grant_of_another_run',
  'grant_of_another_job',
  'token_of_another_identity',
  'not_a_broker_grant',
  'not_a_grant_id',
  // the gateway (API requests proxied with a grant's token)
  'grant_not_live',
  'upgrade_refused',
  'proxy_refused',
  'path_refused',
  'header_refused',
  'gateway_not_synced',
  'request_limit',
  'long_running_limit',
  'upstream_busy',
  // renewal
  'renewal_not_allowed',
  'session_limit_reached',
  'grant_expired',
  'grant_changed',
  // a bug on our side
  'unexpected_error',
] as const;
export type Reason = (typeof REASONS)[number];

/**
 * The reasons a broker configured with `explainRefusals: true` also sends to the caller, so a
 * workflow author can fix the request without the broker's log. Each is about the caller's own
 * request and fixable by its author; none says which check a forged or tampered token failed, or
 * whether someone else's grant exists. Off by default: then no reason ever leaves the broker.
 */
export const CALLER_REASONS = [
  'body_too_large',
  'unsupported_media_type',
  'invalid_json',
  'invalid_request',
  'missing_bearer_token',
  'jwt_issuer',
  'jwt_audience',
  'jwt_expired',
  'jwt_not_yet_valid',
  'jwt_replayed',
  'rate_limited',
  'no_matching_rule',
  'namespace_not_allowed',
  'role_not_allowed',
  'ttl_exceeds_rule',
  'ttl_too_short',
  'ttl_invalid',
  'source_not_allowed',
  'role_dangerous',
  'role_missing',
] as const satisfies readonly Reason[];

export const isCallerReason = (value: unknown): value is (typeof CALLER_REASONS)[number] =>
  typeof value === 'string' && (CALLER_REASONS as readonly string[]).includes(value);

/**
 * RFC 1123 label, as Kubernetes requires for namespace names: lowercase letters, digits and "-",
 * starting and ending with a letter or digit, at most 63 characters.
 */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_LABEL_RULE = 'lowercase letters, digits and "-", at most 63 characters';
export const isDnsLabel = (value: string): boolean => DNS_LABEL.test(value);

/** RFC 1123 subdomain, as Kubernetes requires for most object names: dot-separated labels, at most 253. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const isDnsSubdomain = (value: string): boolean => value.length <= 253 && DNS_SUBDOMAIN.test(value);

/** A role as a job asks for it (the policy's name for it): at most 253 characters, no "/" or spaces. */
export const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

/** How Kubernetes names a ServiceAccount as a user (RBAC subjects, audit logs, `kubectl auth whoami`). */
export const SERVICE_ACCOUNT_USER_PREFIX = 'system:serviceaccount:';
export const serviceAccountUser = (namespace: string, name: string): string =>
  `${SERVICE_ACCOUNT_USER_PREFIX}${namespace}:${name}`;
/** The ServiceAccount a user name (or a token's `sub`) names; undefined for any other user. */
export function parseServiceAccountUser(user: string): { namespace: string; name: string } | undefined {
  if (!user.startsWith(SERVICE_ACCOUNT_USER_PREFIX)) return undefined;
  const [namespace = '', name = '', ...rest] = user.slice(SERVICE_ACCOUNT_USER_PREFIX.length).split(':');
  return rest.length === 0 && namespace && name ? { namespace, name } : undefined;
}
