// Deterministic names, labels and annotations for a grant's Kubernetes objects.
//
// The grant id is derived from the GitHub token's iss + jti and the immutable run claims, so the
// same JWT always maps to the same object names: a replay hits AlreadyExists on the API server,
// which enforces single use across every broker replica without shared state.
import { createHash } from 'node:crypto';
import type { VerifiedClaims } from './types.js';

export const LABEL_PREFIX = 'k8s-ephemeral-access.io';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'k8s-ephemeral-access';
export const GRANT_LABEL = `${LABEL_PREFIX}/grant`;
export const REPOSITORY_ID_LABEL = `${LABEL_PREFIX}/repository-id`;
export const REPOSITORY_OWNER_ID_LABEL = `${LABEL_PREFIX}/repository-owner-id`;
export const RUN_ID_LABEL = `${LABEL_PREFIX}/run-id`;
export const RUN_ATTEMPT_LABEL = `${LABEL_PREFIX}/run-attempt`;
/** The job (GitHub's check_run_id claim), when the token carries it: what OIDC revocation matches. */
export const CHECK_RUN_ID_LABEL = `${LABEL_PREFIX}/check-run-id`;
/**
 * Which part of a grant an object is: 'grant' (the job's access) or 'revoke' (self-revocation); or
 * INLINE_ROLE_PART on the Role an inline role's grants share, which belongs to no grant.
 */
export const PART_LABEL = `${LABEL_PREFIX}/part`;
export const INLINE_ROLE_PART = 'inline-role';

export const EXPIRES_AT_ANNOTATION = `${LABEL_PREFIX}/expires-at`;
export const REPOSITORY_ANNOTATION = `${LABEL_PREFIX}/repository`;
export const WORKFLOW_ANNOTATION = `${LABEL_PREFIX}/workflow`;
export const JOB_WORKFLOW_REF_ANNOTATION = `${LABEL_PREFIX}/job-workflow-ref`;
export const ACTOR_ANNOTATION = `${LABEL_PREFIX}/actor`;
export const SHA_ANNOTATION = `${LABEL_PREFIX}/sha`;
export const REF_ANNOTATION = `${LABEL_PREFIX}/ref`;
export const RUN_URL_ANNOTATION = `${LABEL_PREFIX}/run-url`;
export const JTI_ANNOTATION = `${LABEL_PREFIX}/github-jti`;
export const ROLE_ANNOTATION = `${LABEL_PREFIX}/role`;
export const RULE_ANNOTATION = `${LABEL_PREFIX}/policy-rule`;
/** On a grant's ServiceAccount: the namespace of the broker that made it, where its JWT-use record is. */
export const LEDGER_ANNOTATION = `${LABEL_PREFIX}/ledger-namespace`;

/** The selector that finds every object this broker created. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const GRANT_ID_PREFIX = 'gha-';
/** gha- + 32 hex characters (128 bits of sha256): a DNS-1123 label with room for suffixes. */
export const GRANT_ID_PATTERN = /^gha-[0-9a-f]{32}$/;
export const REVOKE_SUFFIX = '-revoke';

export function grantIdFor(
  claims: Pick<VerifiedClaims, 'iss' | 'jti' | 'repository_id' | 'run_id' | 'run_attempt'>,
): string {
  // A length-prefixed encoding, so no two different claim tuples can produce the same input.
  const h = createHash('sha256');
  for (const part of [claims.iss, claims.jti, claims.repository_id, claims.run_id, claims.run_attempt]) {
    const s = String(part);
    h.update(`${Buffer.byteLength(s)}:${s};`);
  }
  return GRANT_ID_PREFIX + h.digest('hex').slice(0, 32);
}

export const isGrantId = (s: string): boolean => GRANT_ID_PATTERN.test(s);

export const revokeObjectName = (grantId: string): string => `${grantId}${REVOKE_SUFFIX}`;

export const INLINE_ROLE_PREFIX = 'k8s-ea-inline-';
/** The Role every grant of one inline policy role shares in a namespace (role names are DNS-1123 labels). */
export const inlineRoleName = (role: string): string => `${INLINE_ROLE_PREFIX}${role}`;

/**
 * The one self-revoke Role every grant of a namespace binds while the self-revoke guard (the
 * admission policy of this name) is verified; grants/shared-self-revoke.ts.
 */
export const SELF_REVOKE_ROLE = 'k8s-ea-self-revoke';
export const SELF_REVOKE_ROLE_PART = 'self-revoke-role';
/** The canary ServiceAccount and RoleBinding of the guard's enforcement probe (grants/self-revoke-probe.ts). */
export const SELF_REVOKE_PROBE_PART = 'self-revoke-probe';
/** The ValidatingAdmissionPolicy (and its binding) that narrows SELF_REVOKE_ROLE to a grant's own objects. */
export const SELF_REVOKE_GUARD = 'k8s-ea-self-revoke-guard';

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A claim as a label value, or a hash of it when it is not a valid one (GitHub IDs are numeric strings). */
export function labelValue(value: string | undefined): string {
  const v = value ?? '';
  if (v.length <= 63 && LABEL_VALUE.test(v)) return v;
  return `h-${createHash('sha256').update(v).digest('hex').slice(0, 40)}`;
}

export function grantLabels(grantId: string, claims: VerifiedClaims): Record<string, string> {
  return {
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [GRANT_LABEL]: grantId,
    [REPOSITORY_ID_LABEL]: labelValue(claims.repository_id),
    [REPOSITORY_OWNER_ID_LABEL]: labelValue(claims.repository_owner_id),
    [RUN_ID_LABEL]: labelValue(claims.run_id),
    [RUN_ATTEMPT_LABEL]: labelValue(claims.run_attempt),
    ...(claims.check_run_id === undefined ? {} : { [CHECK_RUN_ID_LABEL]: labelValue(claims.check_run_id) }),
  };
}

/** The run's web address, when the issuer tells us which GitHub it is (github.com or GHES). */
export function runUrl(claims: VerifiedClaims): string | undefined {
  let host: string;
  try {
    const u = new URL(claims.iss);
    if (u.hostname === 'token.actions.githubusercontent.com') host = 'https://github.com';
    else if (u.pathname.startsWith('/_services/token')) host = `${u.protocol}//${u.host}`;
    else return undefined;
  } catch {
    return undefined;
  }
  return `${host}/${claims.repository}/actions/runs/${claims.run_id}/attempts/${claims.run_attempt}`;
}

export function grantAnnotations(
  claims: VerifiedClaims,
  grant: { expiresAt: Date; role: string; ruleName: string },
): Record<string, string> {
  const a: Record<string, string> = {
    [EXPIRES_AT_ANNOTATION]: rfc3339(grant.expiresAt),
    [REPOSITORY_ANNOTATION]: claims.repository,
    [REF_ANNOTATION]: claims.ref,
    [JTI_ANNOTATION]: claims.jti,
    [ROLE_ANNOTATION]: grant.role,
    [RULE_ANNOTATION]: grant.ruleName,
  };
  if (claims.workflow) a[WORKFLOW_ANNOTATION] = claims.workflow;
  if (claims.job_workflow_ref) a[JOB_WORKFLOW_REF_ANNOTATION] = claims.job_workflow_ref;
  if (claims.actor) a[ACTOR_ANNOTATION] = claims.actor;
  if (claims.sha) a[SHA_ANNOTATION] = claims.sha;
  const url = runUrl(claims);
  if (url) a[RUN_URL_ANNOTATION] = url;
  return a;
}

/** RFC 3339 in UTC with whole seconds, the way Kubernetes writes timestamps. */
export const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
