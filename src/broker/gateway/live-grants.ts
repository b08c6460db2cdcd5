// The gateway's table of live grants, one per replica: which ServiceAccount uids may use the
// gateway right now. It is fed by watches (grant-watch.ts) on the grant ServiceAccounts of the job
// namespaces and on the broker's JWT-use records, and it proves a grant the way the reaper does
// (grants/grant-proof.ts): labels prove nothing, a ServiceAccount counts only when a JWT-use record in
// the broker's namespace names its grant id and namespace. Its end is the earlier of the record's
// `grant-expires-at` and the ServiceAccount's expiry annotation, checked against the clock on every
// lookup, so a grant is refused to the second whatever its token's own lifetime.
//
// Memory: one small record per grant and per JWT-use record (a few hundred bytes each), never the
// objects themselves.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import type { JwtUseRecord } from '../grants/replay-ledger.js';
import { runOfGrant, type RunAttribution } from '../grant-run.js';
import { EXPIRES_AT_ANNOTATION, ROLE_ANNOTATION, RULE_ANNOTATION, isGrantId } from '../naming.js';

export type { RunAttribution } from '../grant-run.js';

export interface GrantRecord {
  uid: string;
  grantId: string;
  namespace: string;
  /** Epoch ms from the ServiceAccount's expiry annotation; NaN when unreadable (then expired). */
  annotatedExpiry: number;
  role?: string;
  /** The policy rule that granted it: where a rule's network boundary would be looked up. */
  ruleName?: string;
  run: RunAttribution;
}

export interface LiveGrant extends GrantRecord {
  /** Epoch ms. */
  expiresAt: number;
}

/** How long a uid stays refused after its ServiceAccount was deleted or revoked here. */
const TOMBSTONE_MS = 10 * 60_000;

/** The small record the table keeps for a grant ServiceAccount; undefined when it is no grant. */
export function grantRecordOf(namespace: string, sa: V1ServiceAccount): GrantRecord | undefined {
  const meta = sa.metadata;
  const grantId = meta?.name ?? '';
  const uid = meta?.uid ?? '';
  if (!isGrantId(grantId) || !uid) return undefined;
  const a = meta?.annotations ?? {};
  return {
    uid,
    grantId,
    namespace,
    annotatedExpiry: Date.parse(a[EXPIRES_AT_ANNOTATION] ?? ''),
    role: a[ROLE_ANNOTATION],
    ruleName: a[RULE_ANNOTATION],
    run: runOfGrant(meta),
  };
}

/** A grant's place in the table: its name is unique within its namespace only. */
const keyOf = (namespace: string, grantId: string) => `${namespace}/${grantId}`;

export class LiveGrants {
  private readonly byUid = new Map<string, GrantRecord>();
  /**
   * namespace/grant id → uid. Keyed by namespace too: a look-alike of the same name in another
   * job namespace (anyone who may create ServiceAccounts there can make one) takes its own place
   * and never evicts the grant; the JWT-use record's namespace decides which one is live.
   */
  private readonly uidByKey = new Map<string, string>();
  private readonly records = new Map<string, JwtUseRecord>();
  /**
   * uid → when it was removed (and what it was): a late ADDED/MODIFIED event must not bring it
   * back, and a refusal of its token can still say whose grant it claims to be.
   */
  private readonly tombstones = new Map<string, { at: number; grant?: GrantRecord }>();
  private readonly goneListeners: ((uid: string) => void)[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** Called with the uid of every grant that leaves the table (deleted, revoked, replaced). */
  onGone(listener: (uid: string) => void): void {
    this.goneListeners.push(listener);
  }

  /** The grant behind `uid` if it is live now, else undefined. */
  live(uid: string): LiveGrant | undefined {
    const grant = this.byUid.get(uid);
    if (!grant) return undefined;
    const record = this.records.get(grant.grantId);
    if (record?.namespace !== grant.namespace) return undefined;
    // Either may only bring the end forward: an unreadable value means ended (grant-proof.ts).
    const expiresAt = Math.min(
      record.grantExpiresAt ?? -Infinity,
      Number.isFinite(grant.annotatedExpiry) ? grant.annotatedExpiry : -Infinity,
    );
    return expiresAt > this.now() ? { ...grant, expiresAt } : undefined;
  }

  /** The grant behind `uid` if it ended here in the last minutes (for refusal lines only). */
  ended(uid: string): GrantRecord | undefined {
    return this.tombstones.get(uid)?.grant;
  }

  get size(): number {
    return this.byUid.size;
  }

  upsertServiceAccount(namespace: string, sa: V1ServiceAccount): void {
    const record = grantRecordOf(namespace, sa);
    if (record) this.upsertGrant(record);
  }

  upsertGrant(record: GrantRecord): void {
    if (this.tombstones.has(record.uid)) return;
    const key = keyOf(record.namespace, record.grantId);
    const previousUid = this.uidByKey.get(key);
    // A name is unique in its namespace: another uid under this key means the earlier
    // ServiceAccount was deleted (its own end; the watch may report it later) and this replaced it.
    if (previousUid !== undefined && previousUid !== record.uid) this.drop(previousUid);
    this.byUid.set(record.uid, record);
    this.uidByKey.set(key, record.uid);
  }

  removeServiceAccount(sa: V1ServiceAccount): void {
    const uid = sa.metadata?.uid;
    if (uid) this.drop(uid);
  }

  /** A namespace listed afresh (its grants, grantRecordOf): what is not among them any more is gone. */
  replaceNamespace(namespace: string, grants: readonly GrantRecord[]): void {
    const present = new Set(grants.map((grant) => grant.uid));
    for (const [uid, grant] of this.byUid)
      if (grant.namespace === namespace && !present.has(uid)) this.drop(uid);
    for (const grant of grants) if (grant.namespace === namespace) this.upsertGrant(grant);
  }

  upsertRecord(record: JwtUseRecord): void {
    const previous = this.records.get(record.grantId);
    this.records.set(record.grantId, record);
    if (previous?.namespace !== undefined && previous.namespace !== record.namespace)
      this.notifyProvenGone(previous);
  }

  removeRecord(grantId: string): void {
    const previous = this.records.get(grantId);
    this.records.delete(grantId);
    if (previous) this.notifyProvenGone(previous);
  }

  replaceRecords(records: ReadonlyMap<string, JwtUseRecord>): void {
    const previous = [...this.records.values()];
    this.records.clear();
    for (const [grantId, record] of records) this.records.set(grantId, record);
    for (const old of previous)
      if (records.get(old.grantId)?.namespace !== old.namespace) this.notifyProvenGone(old);
  }

  /** This replica revokes the grant: refused from now on, before the watch reports the deletion. */
  forget(namespace: string, grantId: string): void {
    const uid = this.uidByKey.get(keyOf(namespace, grantId));
    if (uid !== undefined) this.drop(uid);
  }

  /** A record stopped proving its grant: announce the one ServiceAccount it proved, if any. */
  private notifyProvenGone(record: JwtUseRecord): void {
    if (record.namespace === undefined) return;
    const uid = this.uidByKey.get(keyOf(record.namespace, record.grantId));
    if (uid !== undefined) this.notifyGone(uid);
  }

  /** `uid`'s own end (deleted, revoked, replaced under its own name): gone, and kept out. */
  private drop(uid: string): void {
    const grant = this.byUid.get(uid);
    const now = this.now();
    // A second end (the watch's DELETED after a revocation here) keeps what the first one knew.
    const known = grant ?? this.tombstones.get(uid)?.grant;
    this.tombstones.delete(uid);
    this.tombstones.set(uid, { at: now, grant: known });
    // Bounded: tombstones older than the longest a late event could take are dropped as we go.
    for (const [old, { at }] of this.tombstones) {
      if (now - at < TOMBSTONE_MS) break;
      this.tombstones.delete(old);
    }
    if (!grant) return;
    this.byUid.delete(uid);
    const key = keyOf(grant.namespace, grant.grantId);
    if (this.uidByKey.get(key) === uid) this.uidByKey.delete(key);
    this.notifyGone(uid);
  }

  private notifyGone(uid: string): void {
    for (const listener of this.goneListeners) listener(uid);
  }
}
