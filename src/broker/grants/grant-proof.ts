// Which of the ServiceAccounts labelled as grants in a namespace are really this broker's grants.
// Labels prove nothing: anyone who may create a ServiceAccount in a job namespace can write them
// (a co-tenant, or a CI role with `serviceaccounts create`, common for Helm charts). A grant is a
// ServiceAccount whose name is a grant id for which the broker's own JWT-use record
// (grants/replay-ledger.ts, in the broker's namespace, where job identities cannot write) names this
// very namespace. The reaper lists every ServiceAccount, not only labelled ones, so that removing
// the labels from a grant cannot keep it alive either.
//
// The record is written beside the grant's root (grant-root.ts), so a broker killed between the two
// can leave a root whose record never landed. Such a root never got a binding or a token, and its
// name is a hash of a JWT's jti (no one can name one ahead of the JWT). It is counted as this
// broker's own, never granted, when it names this broker's ledger (LEDGER_ANNOTATION) and is older
// than any exchange can still be writing its record (UNRECORDED_ROOT_GRACE_MS); the reaper then
// deletes it, with its uid as precondition. The same rule ends a grant whose record is gone
// otherwise (deleted by hand, or given back after a rollback that failed). Only someone who may
// write ServiceAccounts in the namespace can make one look so, and deleting such a ServiceAccount takes nothing from anyone else: its name is in the
// broker's grant-id pattern, and if it is another broker's grant, whoever may edit its annotations
// may already end it (EXPIRES_AT_ANNOTATION, below).
import type { ListedObject } from '../kube/hot-path-api.js';
import {
  EXPIRES_AT_ANNOTATION,
  GRANT_LABEL,
  LEDGER_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  isGrantId,
} from '../naming.js';
import type { JwtUseRecord } from './replay-ledger.js';

/**
 * How long a root may be without its record before it is deleted: far more than an exchange can
 * still be writing the record (one call, sent beside the root's, ends within K8S_CALL_TIMEOUT_MS; a
 * record the API server stores after the broker gave up belongs to an exchange that failed and
 * deleted its own root), with room for the API server's clock (which stamps creationTimestamp) to
 * differ from the broker's. Were it ever too short, an exchange in flight would lose its root and
 * fail (its token request finds no ServiceAccount), never grant without a record.
 */
export const UNRECORDED_ROOT_GRACE_MS = 60_000;

export interface ProvenGrant {
  grantId: string;
  serviceAccount: ListedObject;
  uid: string;
  /**
   * Epoch ms: the record's grant expiry, or the ServiceAccount's if that is earlier or unreadable;
   * for an unrecorded root, its creation plus UNRECORDED_ROOT_GRACE_MS.
   */
  expiresAt: number;
  /** A root without its record: usually one whose record never landed, never granted. */
  unrecorded?: true;
}

export function proveGrants(
  namespace: string,
  serviceAccounts: readonly ListedObject[],
  records: ReadonlyMap<string, JwtUseRecord>,
  /** The broker's namespace, where the records are: what an unrecorded root of this broker names. */
  ledgerNamespace: string,
): { proven: ProvenGrant[]; forged: ListedObject[] } {
  const proven: ProvenGrant[] = [];
  /** Labelled like a grant, but not one. */
  const forged: ListedObject[] = [];
  for (const sa of serviceAccounts) {
    const grantId = sa.metadata?.name ?? '';
    const uid = sa.metadata?.uid ?? '';
    const record = records.get(grantId);
    if (!isGrantId(grantId) || !uid || record?.namespace !== namespace) {
      const root = isGrantId(grantId) && uid ? unrecordedRoot(sa, grantId, uid, ledgerNamespace) : undefined;
      if (root) {
        proven.push(root);
        continue;
      }
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

/** A root of this broker's whose record never landed (see the head of the file), or undefined. */
function unrecordedRoot(
  sa: ListedObject,
  grantId: string,
  uid: string,
  ledgerNamespace: string,
): ProvenGrant | undefined {
  if (sa.metadata?.annotations?.[LEDGER_ANNOTATION] !== ledgerNamespace) return undefined;
  // Set by the API server, so not something an editor can move; unreadable means old.
  const created = new Date(sa.metadata?.creationTimestamp ?? NaN).getTime();
  const expiresAt = Number.isFinite(created) ? created + UNRECORDED_ROOT_GRACE_MS : -Infinity;
  return { grantId, serviceAccount: sa, uid, expiresAt, unrecorded: true };
}
