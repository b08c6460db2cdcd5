// Cross-replica single use of GitHub JWTs, for as long as the JWT could still be presented.
//
// The grant's ServiceAccount name already makes a replay fail while the grant exists, but a grant
// can end (revoked, reaped) while its JWT is still valid, and each replica's in-memory replay cache
// only knows its own requests. So before creating a grant the broker records the JWT as used: a
// Lease named after the grant id in the broker's own namespace, kept until the JWT has expired.
// The API server's name uniqueness makes the first replica win; the reaper drops old entries.
import { V1MicroTime } from '@kubernetes/client-node';
import { BrokerError } from '../../shared/errors.js';
import type { K8sClients } from './clients.js';
import { deleteIgnoringNotFound, describeK8sError, isAlreadyExists } from './errors.js';
import {
  EXPIRES_AT_ANNOTATION,
  GRANT_LABEL,
  LABEL_PREFIX,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  rfc3339,
} from '../naming.js';

export const LEDGER_LABEL = `${LABEL_PREFIX}/jwt-ledger`;
export const LEDGER_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${LEDGER_LABEL}=true`;

/** Records the JWT behind `grantId` as used until `keepUntil`; a second record → jwt_replayed. */
export async function recordJwtUse(
  k8s: K8sClients,
  brokerNamespace: string,
  grantId: string,
  keepUntil: Date,
  now: () => number = Date.now,
): Promise<void> {
  try {
    await k8s.coordination.createNamespacedLease({
      namespace: brokerNamespace,
      body: {
        metadata: {
          name: grantId,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [LEDGER_LABEL]: 'true', [GRANT_LABEL]: grantId },
          annotations: { [EXPIRES_AT_ANNOTATION]: rfc3339(keepUntil) },
        },
        spec: {
          holderIdentity: grantId,
          acquireTime: new V1MicroTime(now()),
          leaseDurationSeconds: Math.max(1, Math.ceil((keepUntil.getTime() - now()) / 1000)),
        },
      },
    });
  } catch (err) {
    if (isAlreadyExists(err))
      throw new BrokerError(
        'ERR_UNAUTHENTICATED',
        'jwt_replayed',
        `JWT of grant ${grantId} was already used`,
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

/** Deletes ledger entries whose JWT can no longer be presented. Returns how many were deleted. */
export async function pruneJwtLedger(k8s: K8sClients, brokerNamespace: string, now: number): Promise<number> {
  const list = await k8s.coordination.listNamespacedLease({
    namespace: brokerNamespace,
    labelSelector: LEDGER_SELECTOR,
  });
  let pruned = 0;
  for (const lease of list.items) {
    const until = Date.parse(lease.metadata?.annotations?.[EXPIRES_AT_ANNOTATION] ?? '');
    if (Number.isFinite(until) && until > now) continue;
    const name = lease.metadata?.name;
    if (!name) continue;
    await deleteIgnoringNotFound(() =>
      k8s.coordination.deleteNamespacedLease({ name, namespace: brokerNamespace }),
    );
    pruned += 1;
  }
  return pruned;
}
