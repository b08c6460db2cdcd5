// Roots whose JWT-use record never landed (a broker killed between the two writes, grant-root.ts):
// the reaper deletes them once they are older than UNRECORDED_ROOT_GRACE_MS, and only those that
// name this broker's ledger and carry a grant id. Everything else labelled like a grant stays a
// forgery, left alone. The real-cluster counterpart is in security/reaper-proof.cluster.test.ts.
import { expect, test } from '@jest/globals';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { testReaper } from '../../../test/support/test-reaper.js';
import { createMetrics } from '../../../src/broker/metrics.js';
import type { AuditEvent } from '../../../src/broker/audit.js';
import { UNRECORDED_ROOT_GRACE_MS } from '../../../src/broker/grants/grant-proof.js';
import { grantServiceAccount, jwtUseRecord } from '../../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
const grantId = (hex: string) => `gha-${hex.repeat(32)}`;
/** testReaper's broker namespace, where its records are. */
const LEDGER = 'broker';
const at = (ms: number) => new Date(ms).toISOString();

/** A root as the broker writes it (the ledger annotation), created at `created`, without a record. */
function root(name: string, created: string, ledger: string | null = LEDGER) {
  const sa = grantServiceAccount(name, '2026-06-01T13:00:00Z');
  return {
    metadata: {
      ...sa.metadata,
      creationTimestamp: created,
      annotations: {
        ...sa.metadata.annotations,
        ...(ledger ? { 'k8s-ephemeral-access.io/ledger-namespace': ledger } : {}),
      },
    },
  };
}

const OLD = grantId('1');
const YOUNG = grantId('2');
const OTHER_LEDGER = grantId('3');
const NO_LEDGER = grantId('4');
const NOT_A_GRANT_ID = 'gha-not-a-grant';
/** Its record names another namespace: the same JWT was spent there. */
const RECORD_ELSEWHERE = grantId('5');
/** A grant with its record: proven as before, not an unrecorded root. */
const RECORDED = grantId('6');

type Root = ReturnType<typeof root>;
type Record_ = ReturnType<typeof jwtUseRecord>;

/**
 * A scripted cluster: the ServiceAccounts of each namespace and the broker's records. It records
 * each ServiceAccount deletion (with its uid precondition) and each record pruned.
 */
function scriptedCluster(listed: Record<string, Root[]>, records: Record_[]) {
  const deleted: { namespace: string; name: string; uid?: string }[] = [];
  const pruned: string[] = [];
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async ({ namespace }: { namespace: string }) => ({
        items: (listed[namespace] ?? []).filter(
          (sa) => !deleted.some((d) => d.namespace === namespace && d.name === sa.metadata.name),
        ),
      }),
      deleteNamespacedServiceAccount: async (p: {
        name: string;
        namespace: string;
        body?: { preconditions?: { uid?: string } };
      }) => void deleted.push({ namespace: p.namespace, name: p.name, uid: p.body?.preconditions?.uid }),
    },
    rbac: {
      readNamespacedRoleBinding: async () => {
        throw apiError(404);
      },
      readNamespacedRole: async () => {
        throw apiError(404);
      },
    },
    coordination: {
      readNamespacedLease: async () => {
        throw apiError(404);
      },
      createNamespacedLease: async () => ({}),
      listNamespacedLease: async () => ({ items: records }),
      deleteNamespacedLease: async ({ name }: { name: string }) => void pruned.push(name),
    },
  });
  return { k8s, deleted, pruned };
}

/** Namespace ci: every kind of root; the reaper also visits "elsewhere", which a record names: empty. */
function cluster() {
  const old = at(NOW - UNRECORDED_ROOT_GRACE_MS - 1000);
  const recordElsewhere = jwtUseRecord(RECORD_ELSEWHERE, '2026-06-01T13:00:00Z', '2026-06-01T13:00:00Z');
  recordElsewhere.metadata.labels = { 'k8s-ephemeral-access.io/namespace': 'elsewhere' };
  const { k8s, deleted } = scriptedCluster(
    {
      ci: [
        root(OLD, old),
        root(YOUNG, at(NOW - UNRECORDED_ROOT_GRACE_MS + 5000)),
        root(OTHER_LEDGER, old, 'another-broker'),
        root(NO_LEDGER, old, null),
        root(NOT_A_GRANT_ID, old),
        root(RECORD_ELSEWHERE, old),
        root(RECORDED, old),
      ],
    },
    [recordElsewhere, jwtUseRecord(RECORDED, '2026-06-01T13:00:00Z', '2026-06-01T13:00:00Z')],
  );
  return { k8s, deleted };
}

test("an old root naming this broker's ledger is deleted by its uid and audited as never granted", async () => {
  const { k8s, deleted } = cluster();
  const audit: AuditEvent[] = [];
  const metrics = createMetrics();
  const reaper = testReaper(k8s, {
    audit: { record: (e) => void audit.push(e) },
    metrics,
    now: () => NOW,
    namespaces: () => ['ci'],
  });
  const pass = await reaper.runOnce();
  expect(deleted).toEqual(
    expect.arrayContaining([
      { namespace: 'ci', name: OLD, uid: `uid-${OLD}` },
      { namespace: 'ci', name: RECORD_ELSEWHERE, uid: `uid-${RECORD_ELSEWHERE}` },
    ]),
  );
  expect(deleted).toHaveLength(2);
  expect(pass.reaped.sort()).toEqual([OLD, RECORD_ELSEWHERE].sort());
  expect(audit.map((a) => [a.action, a.grantId, a.unrecorded, a.by])).toEqual(
    expect.arrayContaining([
      ['reap', OLD, true, 'reaper'],
      ['reap', RECORD_ELSEWHERE, true, 'reaper'],
    ]),
  );
  // Not a forgery and not deleted: young (an exchange may still be writing its record), or a grant.
  // Forgeries: another broker's, one naming no ledger, a name no grant id has.
  expect(pass.forged.sort()).toEqual(
    [`ci/${NOT_A_GRANT_ID}`, `ci/${NO_LEDGER}`, `ci/${OTHER_LEDGER}`].sort(),
  );
  // Live grants count only recorded ones.
  expect(await metrics.registry.getSingleMetricAsString('k8s_ea_active_grants')).toMatch(
    /^k8s_ea_active_grants 1$/m,
  );
  // A root does not bring the next pass forward (anyone may make one): the recorded grant's end does.
  expect(pass.nextExpiry).toBe(Date.parse('2026-06-01T13:00:00Z'));
  // Its audit line carries no labels or annotations (not the broker's word) and no end.
  const line = audit.find((a) => a.grantId === OLD)!;
  expect(Object.keys(line).sort()).toEqual(
    ['action', 'by', 'grantId', 'namespace', 'serviceAccount', 'serviceAccountUid', 'unrecorded'].sort(),
  );
});

test('a young root is deleted once its grace has passed', async () => {
  const { k8s, deleted } = cluster();
  let now = NOW;
  const reaper = testReaper(k8s, { now: () => now });
  await reaper.runOnce();
  expect(deleted.map((d) => d.name)).not.toContain(YOUNG);
  now = NOW + 5000;
  await reaper.runOnce();
  expect(deleted.map((d) => d.name)).toContain(YOUNG);
  expect(deleted.map((d) => d.name)).not.toContain(RECORDED);
});

test("a root named after a live grant of another namespace is reaped; the live grant's record and grant stay", async () => {
  // A co-tenant of "other" read the grant id of a live grant in "ci" and made a look-alike there.
  const live = grantId('7');
  const old = at(NOW - UNRECORDED_ROOT_GRACE_MS - 1000);
  // Past its keep time (the JWT has expired), its grant still live: kept while the grant exists.
  const { k8s, deleted, pruned } = scriptedCluster({ ci: [root(live, old)], other: [root(live, old)] }, [
    jwtUseRecord(live, '2026-06-01T11:00:00Z', '2026-06-01T13:00:00Z'),
  ]);
  // "ci" first: the look-alike's pass comes after the live grant's, as it must to matter.
  const reaper = testReaper(k8s, { now: () => NOW, namespaces: () => ['ci', 'other'] });
  await reaper.runOnce();
  await reaper.runOnce();
  expect(deleted.map((d) => `${d.namespace}/${d.name}`)).toEqual([`other/${live}`]);
  expect(pruned).toEqual([]);
});
