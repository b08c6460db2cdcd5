// JWT-use records: cross-replica single use of GitHub JWTs, and the reaper's proof of a grant.
//
// The grant's ServiceAccount name also makes a replay fail while the grant has its access binding
// (grant-root.ts), but a grant can end (revoked, reaped) while its JWT is still valid, and each
// replica's in-memory replay cache only knows its own requests. So the broker records the JWT as used: a Lease named after the grant
// id in the broker's own namespace, written beside the grant's ServiceAccount, and nothing is bound
// or issued before both exist (grant-root.ts). The API server's name uniqueness makes one replica win.
//
// Job identities cannot write in the broker's namespace, so a record is also the one thing the
// reaper can trust: it names the namespace the grant was created in and when the grant ends, and
// stays at least as long as the grant (labels on a ServiceAccount prove nothing: anyone who may
// create one can write them). The reaper deletes a record once it has expired and its grant is gone.
import { V1MicroTime, type V1Lease, type V1ObjectMeta } from '@kubernetes/client-node';
import { BrokerError } from '../../shared/errors.js';
import type { K8sClients } from '../kube/clients.js';
import { deleteIgnoringNotFound, describeK8sError, isAlreadyExists, isConflict } from '../kube/errors.js';
import { LIST_PAGE_SIZE, listReduced } from '../kube/paged-list.js';
import {
  EXPIRES_AT_ANNOTATION,
  GRANT_LABEL,
  LABEL_PREFIX,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  grantIdFor,
  isGrantId,
  rfc3339,
} from '../naming.js';
import type { VerifiedClaims } from '../types.js';

export const LEDGER_LABEL = `${LABEL_PREFIX}/jwt-ledger`;
export const LEDGER_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${LEDGER_LABEL}=true`;
/** The job namespace of the record's grant (a namespace name is a valid label value). */
export const LEDGER_NAMESPACE_LABEL = `${LABEL_PREFIX}/namespace`;
export const GRANT_EXPIRES_AT_ANNOTATION = `${LABEL_PREFIX}/grant-expires-at`;

/**
 * How long a JWT-use record outlives the JWT's exp beyond the verifier's leeway: a margin for the
 * clocks of the replicas and the API server, so no replica still accepts a JWT whose record is gone.
 */
export const JWT_RECORD_MARGIN_SECONDS = 60;

/** How long after a JWT's exp its record is kept, for a verifier with this clock leeway. */
export const jwtRecordKeepAfterExpiry = (leewaySeconds: number): number =>
  leewaySeconds + JWT_RECORD_MARGIN_SECONDS;

/** Where JWT uses are recorded (the broker's own namespace), and for how long after a JWT's exp. */
export interface ReplayLedger {
  namespace: string;
  keepAfterExpirySeconds: number;
}

export interface JwtUse {
  grantId: string;
  /**
   * Where the grant is created: the reaper looks there even after the namespace left the policy.
   * Absent for a JWT spent on a revocation, which creates no grant (and so proves none).
   */
  namespace?: string;
  /** When the grant ends, as the broker decided it; absent with `namespace`. */
  grantExpiresAt?: Date;
  /** When the record may go: the JWT can no longer be presented and the grant has ended. */
  keepUntil: Date;
}

/** A record as read back; records of older brokers name no namespace and prove nothing. */
export interface JwtUseRecord {
  grantId: string;
  namespace?: string;
  grantExpiresAt?: number;
  /** Epoch ms; NaN when unreadable (such a record is pruned as soon as its grant is gone). */
  keepUntil: number;
}

/** The record's metadata; the bench writes the same through its own client. */
export function jwtUseMetadata(use: JwtUse): V1ObjectMeta & { name: string } {
  return {
    name: use.grantId,
    labels: {
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      [LEDGER_LABEL]: 'true',
      [GRANT_LABEL]: use.grantId,
      ...(use.namespace ? { [LEDGER_NAMESPACE_LABEL]: use.namespace } : {}),
    },
    annotations: {
      [EXPIRES_AT_ANNOTATION]: rfc3339(use.keepUntil),
      ...(use.grantExpiresAt ? { [GRANT_EXPIRES_AT_ANNOTATION]: rfc3339(use.grantExpiresAt) } : {}),
    },
  };
}

/** The Lease that records a JWT use; the bench writes the same body through its own client. */
export function jwtUseLease(use: JwtUse, now: number): V1Lease {
  return {
    metadata: jwtUseMetadata(use),
    spec: {
      holderIdentity: use.grantId,
      acquireTime: new V1MicroTime(now),
      leaseDurationSeconds: Math.max(1, Math.ceil((use.keepUntil.getTime() - now) / 1000)),
    },
  };
}

/** Records the JWT behind `use.grantId` as used, returning the record's uid; a second record → jwt_replayed. */
export async function recordJwtUse(
  k8s: K8sClients,
  brokerNamespace: string,
  use: JwtUse,
  now: () => number = Date.now,
): Promise<string | undefined> {
  try {
    const lease = await k8s.hotPath.createNamespacedLease({
      namespace: brokerNamespace,
      body: jwtUseLease(use, now()),
    });
    return lease.metadata?.uid;
  } catch (err) {
    if (isAlreadyExists(err))
      throw new BrokerError(
        'ERR_UNAUTHENTICATED',
        'jwt_replayed',
        `JWT of grant ${use.grantId} was already used`,
        {
          cause: err,
        },
      );
    throw new BrokerError(
      'ERR_UNAVAILABLE',
      'cluster_unavailable',
      `record JWT use: ${describeK8sError(err)}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Every record of this broker, keyed by grant id; names that are no grant id are skipped. Read a
 * page at a time as plain JSON (kube/paged-list.ts): with thousands of live grants, one answer
 * deserialized into client-node's objects cost the reaper more CPU and longer event-loop blocks.
 */
export async function listJwtUses(
  k8s: K8sClients,
  brokerNamespace: string,
  pageSize = LIST_PAGE_SIZE,
): Promise<Map<string, JwtUseRecord>> {
  const { kept } = await listReduced(
    (page) =>
      k8s.hotPath.listNamespacedLease({
        namespace: brokerNamespace,
        labelSelector: LEDGER_SELECTOR,
        ...page,
      }),
    (lease) => jwtUseRecordOf(lease.metadata),
    pageSize,
  );
  return new Map(kept.map((record) => [record.grantId, record]));
}

/** One record as read back from its Lease's metadata; undefined when the name is no grant id. */
export function jwtUseRecordOf(
  metadata: Pick<V1ObjectMeta, 'name' | 'labels' | 'annotations'> | undefined,
): JwtUseRecord | undefined {
  const grantId = metadata?.name ?? '';
  if (!isGrantId(grantId)) return undefined;
  const annotations = metadata?.annotations ?? {};
  const grantExpiresAt = Date.parse(annotations[GRANT_EXPIRES_AT_ANNOTATION] ?? '');
  return {
    grantId,
    namespace: metadata?.labels?.[LEDGER_NAMESPACE_LABEL] || undefined,
    grantExpiresAt: Number.isFinite(grantExpiresAt) ? grantExpiresAt : undefined,
    keepUntil: Date.parse(annotations[EXPIRES_AT_ANNOTATION] ?? ''),
  };
}

/**
 * Deletes a record; with `uid`, only that very record (the one an exchange wrote and now gives back):
 * one that is gone or is another's by now is left alone.
 */
export async function deleteJwtUse(
  k8s: K8sClients,
  brokerNamespace: string,
  grantId: string,
  uid?: string,
): Promise<void> {
  await deleteIgnoringNotFound(() =>
    k8s.hotPath.deleteNamespacedLease({
      name: grantId,
      namespace: brokerNamespace,
      ...(uid ? { body: { preconditions: { uid } } } : {}),
    }),
  ).catch((err: unknown) => {
    if (!(uid && isConflict(err))) throw err;
  });
}

/**
 * Spends the JWT of `claims`, whatever the request then does with it: it can never be exchanged or
 * used again, on any replica. Kept while the JWT could be presented; for a grant (`grant`), the
 * reaper also keeps it while the grant exists, as the grant's proof.
 */
export async function spendJwt(
  k8s: K8sClients,
  ledger: ReplayLedger,
  claims: VerifiedClaims,
  now: () => number,
  grant?: { namespace: string; grantExpiresAt: Date },
): Promise<string | undefined> {
  const keepUntil = new Date((claims.exp + ledger.keepAfterExpirySeconds) * 1000);
  return recordJwtUse(k8s, ledger.namespace, { grantId: grantIdFor(claims), keepUntil, ...grant }, now);
}
