// What a workflow author sees when the broker refuses the exchange, without access to the broker's
// log: the claims this job presented (decoded locally from the JWT's payload; the token itself is
// never shown) and one line saying what to change, for the broker's reason when it sends one
// (`explainRefusals: true`, docs/api.md) or else for the refusal's code.
import type { ErrorCode, Reason } from '../shared/contract.js';

/** The claims the policy matches on, plus where the token was for: none of them is a secret. */
export const PRESENTED_CLAIMS = [
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'ref',
  'ref_type',
  'event_name',
  'environment',
  'workflow_ref',
  'job_workflow_ref',
  'runner_environment',
  'iss',
  'aud',
] as const;

/** The presented claims by name; empty when the JWT's payload cannot be read. */
export function presentedClaims(jwt: string): Record<string, string> {
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    return {};
  }
  if (!payload || typeof payload !== 'object') return {};
  const out: Record<string, string> = {};
  for (const name of PRESENTED_CLAIMS) {
    const value = (payload as Record<string, unknown>)[name];
    const text = Array.isArray(value) ? value.join(', ') : value;
    // Printable text only, and short: the log line must not be forgeable through a claim.
    if (typeof text === 'string' && text.length <= 300 && /^[\x20-\x7e]*$/.test(text)) out[name] = text;
  }
  return out;
}

export function renderClaims(claims: Record<string, string>): string {
  const value = (name: string) => claims[name] ?? '(none)';
  return [
    'The GitHub OIDC token this job presented (compare with the broker policy):',
    `  repository: ${value('repository')} (repository_id ${value('repository_id')})`,
    `  owner: ${value('repository_owner')} (repository_owner_id ${value('repository_owner_id')})`,
    `  ref: ${value('ref')} (ref_type ${value('ref_type')}), event_name: ${value('event_name')}, environment: ${value('environment')}`,
    `  workflow_ref: ${value('workflow_ref')}`,
    `  job_workflow_ref: ${value('job_workflow_ref')}`,
    `  runner_environment: ${value('runner_environment')}, aud: ${value('aud')}, iss: ${value('iss')}`,
  ].join('\n');
}

/** One line per reason: what the workflow author (or, where only they can, the operator) changes. */
export const REASON_FIXES: Record<Reason, string> = {
  body_too_large:
    'the request is larger than the broker accepts; this is a bug in the action, please report it',
  unsupported_media_type:
    'the request was not sent as JSON; is broker-url the broker and not a proxy in front of it?',
  invalid_json: 'the request reached the broker garbled; is a proxy rewriting it?',
  invalid_request: 'check the namespace, role and ttl inputs (names, whole seconds)',
  missing_bearer_token: 'the token did not reach the broker; is a proxy stripping the Authorization header?',
  no_such_route: 'broker-url points at something that is not the broker (or a path prefix is missing)',
  jwt_malformed: 'the token did not reach the broker intact; is a proxy rewriting the Authorization header?',
  jwt_oversized: 'the token is larger than the broker accepts; report it to the broker operator',
  jwt_signature:
    'the broker could not verify the token; report it to the broker operator with the request id',
  jwt_alg: 'the broker could not verify the token; report it to the broker operator with the request id',
  jwt_header: 'the broker could not verify the token; report it to the broker operator with the request id',
  jwt_unknown_kid:
    "the broker does not know the token's signing key yet; retry, then report it with the request id",
  jwt_issuer:
    'the broker does not trust this issuer (GitHub Enterprise: ask the operator to add yours to issuers)',
  jwt_audience: 'set the "audience" input to the audience the broker expects',
  jwt_expired: "the token expired before the broker saw it; check the runner's clock and retry",
  jwt_not_yet_valid: "the token is not valid yet at the broker; the runner's or the broker's clock is off",
  jwt_lifetime: 'the token lives longer than the broker accepts; report it to the broker operator',
  jwt_claims: 'the token lacks a GitHub claim the broker needs; report it to the broker operator',
  jwt_invalid: 'the broker could not verify the token; report it to the broker operator with the request id',
  jwt_replayed: 'this token was already used; re-run the job (every attempt gets a fresh token)',
  jwks_unavailable: "the broker cannot fetch GitHub's signing keys right now; retry later",
  rate_limited: 'too many requests from this repository; retry later or ask for a higher limit',
  no_matching_rule:
    'no policy rule matches the claims above: ask the policy owner for a rule with this repository, ref, event and environment',
  namespace_not_allowed:
    'rules match this job, but none allows this namespace: use a namespace they allow, or ask the policy owner',
  role_not_allowed:
    'rules allow this namespace, but not this role: use a role they allow, or ask the policy owner',
  ttl_exceeds_rule: 'ask for a shorter ttl, or leave ttl empty to get the longest the rule allows',
  ttl_too_short: 'ask for a ttl of at least 60 seconds',
  source_not_allowed:
    "a rule allows this request, but not from this runner's address: run it on a runner inside the rule's sourceRanges",
  ttl_invalid: 'ttl must be a whole number of seconds',
  policy_inconsistent:
    'the broker policy is inconsistent; report it to the broker operator with the request id',
  role_dangerous:
    'the role now grants a permission the broker refuses (e.g. Secrets); the cluster owner must fix the role',
  role_missing: 'the role does not exist in the cluster (any more); the cluster owner must create it',
  grant_refused_by_cluster:
    'the cluster refused to create the grant; report it to the broker operator with the request id',
  cluster_unavailable: 'the broker cannot reach the API server right now; retry later',
  kubernetes_token_rejected: 'the grant token is no longer valid (revoked or expired)',
  grant_not_found: "the grant is gone (revoked or expired) or not this job's",
  grant_of_another_run: "the grant is gone (revoked or expired) or not this job's",
  grant_of_another_job: "the grant is gone (revoked or expired) or not this job's",
  token_of_another_identity: "the grant is gone (revoked or expired) or not this job's",
  not_a_broker_grant: "the grant is gone (revoked or expired) or not this job's",
  not_a_grant_id: "the grant is gone (revoked or expired) or not this job's",
  // Renewal refusals reach the credential plugin, which prints its own line; listed for completeness.
  renewal_not_allowed:
    'the policy rule sets no maxSessionSeconds: ask for a longer ttl, or ask the policy owner to allow renewal',
  session_limit_reached:
    "the grant reached its rule's maxSessionSeconds; run the action again for a new grant",
  grant_expired: 'the grant ended before it was renewed; run the action again for a new grant',
  grant_changed: 'the grant changed while it was renewed; retry',
  // The gateway's own refusals reach kubectl, not the action; listed so every reason has its fix.
  grant_not_live: 'the grant was revoked or has expired; run the action again for a new grant',
  upgrade_refused: 'the gateway refuses exec, attach, port-forward and cp; use an API call instead',
  proxy_refused: "the gateway refuses the API server's proxy (pods/proxy, services/proxy, nodes/proxy)",
  path_refused: 'the gateway refuses this request path; send a plain Kubernetes API path',
  header_refused: 'the gateway refuses impersonation and similar headers; drop them from the request',
  gateway_not_synced: 'the gateway is still starting; retry in a few seconds',
  request_limit:
    "the job has as many calls in flight through the gateway as its grant (or its repository's grants) may; kubectl retries by itself",
  long_running_limit:
    'the job holds as many watches or log streams through the gateway as its grant (or its repository) may; end one first',
  upstream_busy: 'the gateway has no free connection to the API server right now; retry',
  unexpected_error: 'a bug in the broker; report it to the broker operator with the request id',
};

/** When the broker does not say why (the default), what the refusal's code can mean. */
export const CODE_FIXES: Record<ErrorCode, string> = {
  ERR_BAD_REQUEST: 'check the namespace, role and ttl inputs',
  ERR_UNAUTHENTICATED:
    'the broker did not accept the GitHub token: check that the "audience" input matches the broker\'s audience',
  ERR_FORBIDDEN:
    "no policy rule allows these claims (above) with this namespace, role and ttl (at most the rule's maximum); compare them with the policy, or ask its owner. The broker says which check failed only with explainRefusals: true; its log has the reason for the request id",
  ERR_NOT_FOUND: 'broker-url points at something that is not the broker, or the grant is gone',
  ERR_PAYLOAD_TOO_LARGE: 'the request is larger than the broker accepts; report it',
  ERR_RATE_LIMITED: 'too many requests from this repository; retry later',
  ERR_UNAVAILABLE: 'the broker cannot serve requests right now; retry later',
  ERR_INTERNAL: 'the broker failed; report it to its operator with the request id',
};

/** The fix for a refusal: the reason's when the broker gave one, else the code's. */
export function refusalFix(r: {
  code?: ErrorCode;
  reason?: Reason;
  maxTtlSeconds?: number;
}): string | undefined {
  if (r.reason === 'ttl_exceeds_rule' && r.maxTtlSeconds !== undefined)
    return `ask for ttl ≤ ${r.maxTtlSeconds} seconds (the longest the rules allowing this request permit), or leave ttl empty`;
  if (r.reason) return REASON_FIXES[r.reason];
  return r.code ? CODE_FIXES[r.code] : undefined;
}
