// Who a gateway call (or refusal) belongs to, for its audit line: the grant and its GitHub run
// when the token is proven to be a live grant's, else only what the token claims, marked as a
// claim (a forged token may claim anything, so a claim never takes the `grantId` field).
import { parseServiceAccountUser } from '../../shared/contract.js';
import type { AuditEvent } from '../audit.js';
import { unverifiedJwtPayload } from '../unverified-jwt.js';
import { isGrantId } from '../naming.js';
import type { GrantRecord, LiveGrant } from './live-grants.js';

export interface ClaimedIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** Epoch ms. */
  expiresAt: number;
}

/** What a service-account token says it is, unverified: only to refuse early and pick the grant. */
export function claimedIdentity(token: string): ClaimedIdentity | undefined {
  const payload = unverifiedJwtPayload(token);
  const k = payload?.['kubernetes.io'] as { serviceaccount?: { uid?: unknown } } | undefined;
  const uid = k?.serviceaccount?.uid;
  const account = parseServiceAccountUser(typeof payload?.sub === 'string' ? payload.sub : '');
  if (!account || typeof uid !== 'string' || typeof payload?.exp !== 'number') return undefined;
  return { namespace: account.namespace, name: account.name, uid, expiresAt: payload.exp * 1000 };
}

/** A proven live grant: its id, ServiceAccount, rule and run. */
export function grantFields(grant: LiveGrant): Partial<AuditEvent> {
  return {
    claims: grant.run,
    grantId: grant.grantId,
    serviceAccount: grant.grantId,
    serviceAccountUid: grant.uid,
    grantNamespace: grant.namespace,
    policyRule: grant.ruleName,
  };
}

/**
 * An unproven token that names a grant ServiceAccount: what it claims, marked as such, with the
 * run of the grant it names when that grant ended here lately (uid, name and namespace alike).
 */
export function claimedFields(
  claimed: ClaimedIdentity | undefined,
  ended?: (uid: string) => GrantRecord | undefined,
): Partial<AuditEvent> {
  if (!claimed || !isGrantId(claimed.name)) return {};
  const grant = ended?.(claimed.uid);
  const same = grant?.grantId === claimed.name && grant.namespace === claimed.namespace;
  return {
    claimedGrantId: claimed.name,
    claimedNamespace: claimed.namespace,
    ...(same ? { claims: grant.run } : {}),
  };
}
