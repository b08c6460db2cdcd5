// Moving a grant's end. Two objects say when a grant ends and both move: the ServiceAccount's expiry
// annotation (what the gateway and the reaper read) and the JWT-use record's grant-expires-at (the
// reaper's proof; it takes the earlier of the two). Each is replaced with the resourceVersion it was
// read at, so a concurrent change fails (409) instead of being overwritten. When the grant would
// outlive its token, a new token is minted for the same ServiceAccount uid first.
import type { V1Lease, V1ServiceAccount } from '@kubernetes/client-node';
import { BrokerError } from '../../shared/errors.js';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError, isConflict, isNotFound } from '../kube/errors.js';
import { requestGrantToken } from './grant-token.js';
import { GRANT_EXPIRES_AT_ANNOTATION, LEDGER_NAMESPACE_LABEL } from './replay-ledger.js';
import { EXPIRES_AT_ANNOTATION, rfc3339 } from '../naming.js';

export type RenewalPlan =
  | { kind: 'expired' }
  | { kind: 'limit' }
  /** expiresAt is never earlier than the current end: a renewal that comes early changes nothing. */
  | { kind: 'renew'; expiresAt: number; mintToken: boolean };

/**
 * The new end: min(now + ttl, session end), never earlier than the current end, in whole seconds
 * (the annotations' precision, rounded down so the session limit is never passed). All in epoch ms.
 */
export function planRenewal(t: {
  now: number;
  ttlSeconds: number;
  currentExpiresAt: number;
  sessionEndsAt: number;
  tokenExpiresAt: number;
}): RenewalPlan {
  if (!(t.currentExpiresAt > t.now)) return { kind: 'expired' };
  if (t.currentExpiresAt >= t.sessionEndsAt) return { kind: 'limit' };
  const target = Math.floor(Math.min(t.now + t.ttlSeconds * 1000, t.sessionEndsAt) / 1000) * 1000;
  const expiresAt = Math.max(t.currentExpiresAt, target);
  return { kind: 'renew', expiresAt, mintToken: !(t.tokenExpiresAt >= expiresAt) };
}

/** The grant's JWT-use record, read to prove the grant and to be moved; undefined when there is none. */
export async function readGrantRecord(
  k8s: K8sClients,
  ledgerNamespace: string,
  grantId: string,
  grantNamespace: string,
): Promise<{ lease: V1Lease; grantExpiresAt: number } | undefined> {
  let lease: V1Lease;
  try {
    lease = await k8s.coordination.readNamespacedLease({ name: grantId, namespace: ledgerNamespace });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw unavailable('read the JWT-use record', err);
  }
  if (lease.metadata?.labels?.[LEDGER_NAMESPACE_LABEL] !== grantNamespace) return undefined;
  const grantExpiresAt = Date.parse(lease.metadata.annotations?.[GRANT_EXPIRES_AT_ANNOTATION] ?? '');
  // An unreadable end counts as over, as the reaper counts it.
  return { lease, grantExpiresAt: Number.isFinite(grantExpiresAt) ? grantExpiresAt : -Infinity };
}

export interface ExtendedGrant {
  expiresAt: Date;
  /** Present when a new token was minted. */
  minted?: { token: string; tokenExpiresAt: Date };
}

/** Carries out a 'renew' plan: mint when needed, then the ServiceAccount, then the record. */
export async function extendGrant(
  k8s: K8sClients,
  grant: { namespace: string; serviceAccount: V1ServiceAccount; record?: V1Lease; ledgerNamespace?: string },
  plan: { expiresAt: number; mintToken: boolean },
  now: number,
  /** Gateway mode: the audience of the grant's tokens (grants.ts). */
  gatewayAudience?: string,
): Promise<ExtendedGrant> {
  const sa = grant.serviceAccount;
  const name = sa.metadata?.name ?? '';
  const uid = sa.metadata?.uid ?? '';
  let expiresAt = plan.expiresAt;
  let minted: ExtendedGrant['minted'];
  if (plan.mintToken) {
    try {
      minted = await requestGrantToken(
        k8s,
        { namespace: grant.namespace, name, uid },
        (plan.expiresAt - now) / 1000,
        gatewayAudience,
      );
    } catch (err) {
      throw unavailable('mint a new token', err);
    }
    // The API server may cap token lifetimes (--service-account-max-token-expiration).
    expiresAt = Math.min(expiresAt, Math.floor(minted.tokenExpiresAt.getTime() / 1000) * 1000);
  }
  const end = rfc3339(new Date(expiresAt));
  await replaceWithEnd('the ServiceAccount', grant.serviceAccount, EXPIRES_AT_ANNOTATION, end, (body) =>
    k8s.core.replaceNamespacedServiceAccount({ name, namespace: grant.namespace, body }),
  );
  if (grant.record && grant.ledgerNamespace) {
    const ns = grant.ledgerNamespace;
    await replaceWithEnd('the JWT-use record', grant.record, GRANT_EXPIRES_AT_ANNOTATION, end, (body) =>
      k8s.coordination.replaceNamespacedLease({ name, namespace: ns, body }),
    );
  }
  return { expiresAt: new Date(expiresAt), minted };
}

/** Replaces the object as read (its resourceVersion included) with one annotation changed. */
async function replaceWithEnd<T extends { metadata?: { annotations?: Record<string, string> } }>(
  what: string,
  object: T,
  annotation: string,
  end: string,
  replace: (body: T) => Promise<unknown>,
): Promise<void> {
  const body = {
    ...object,
    metadata: { ...object.metadata, annotations: { ...object.metadata?.annotations, [annotation]: end } },
  };
  try {
    await replace(body);
  } catch (err) {
    if (isNotFound(err))
      throw new BrokerError('ERR_NOT_FOUND', 'grant_not_found', `${what} is gone`, { cause: err });
    if (isConflict(err))
      throw new BrokerError('ERR_UNAVAILABLE', 'grant_changed', `${what} changed while renewing`, {
        cause: err,
      });
    throw unavailable(`update ${what}`, err);
  }
}

function unavailable(step: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  return new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', `${step}: ${describeK8sError(err)}`, {
    cause: err,
  });
}
