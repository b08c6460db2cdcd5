// Which of the ServiceAccounts labelled as grants in a namespace are really this broker's grants.
// Labels prove nothing: anyone who may create a ServiceAccount in a job namespace can write them
// (a co-tenant, or a CI role with `serviceaccounts create`, common for Helm charts). A grant is a
// ServiceAccount whose name is a grant id for which the broker's own JWT-use record
// (grants/replay-ledger.ts, in the broker's namespace, where job identities cannot write) names this
// very namespace. The reaper lists every ServiceAccount, not only labelled ones, so that removing
// the labels from a grant cannot keep it alive either.
import type { ListedObject } from '../kube/hot-path-api.js';
import {
  EXPIRES_AT_ANNOTATION,
  GRANT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  isGrantId,
} from '../naming.js';
import type { JwtUseRecord } from './replay-ledger.js';

export interface ProvenGrant {
  grantId: string;
  serviceAccount: ListedObject;
  uid: string;
  /** Epoch ms: the record's grant expiry, or the ServiceAccount's if that is earlier or unreadable. */
  expiresAt: number;
}

export function proveGrants(
  namespace: string,
  serviceAccounts: readonly ListedObject[],
  records: ReadonlyMap<string, JwtUseRecord>,
): { proven: ProvenGrant[]; forged: ListedObject[] } {
  const proven: ProvenGrant[] = [];
  /** Labelled like a grant, but not one. */
  const forged: ListedObject[] = [];
  for (const sa of serviceAccounts) {
    const grantId = sa.metadata?.name ?? '';
    const uid = sa.metadata?.uid ?? '';
    const record = records.get(grantId);
    if (!isGrantId(grantId) || !uid || record?.namespace !== namespace) {
      const labels = sa.metadata?.labels ?? {};
      if (labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE || labels[GRANT_LABEL] !== undefined) forged.push(sa);
      continue;
    }
    // The annotation can only bring the end forward (anyone who may edit it may delete the
    // ServiceAccount outright); an unreadable one means expired: nothing may live forever.
    const annotated = Date.parse(sa.metadata?.annotations?.[EXPIRES_AT_ANNOTATION] ?? '');
    const expiresAt = Math.min(
      record.grantExpiresAt ?? -Infinity,
      Number.isFinite(annotated) ? annotated : -Infinity,
    );
    proven.push({ grantId, serviceAccount: sa, uid, expiresAt });
  }
  return { proven, forged };
}
