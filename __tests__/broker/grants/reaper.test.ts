// Reaper logic with a scripted Kubernetes fake (the real-cluster reaping is proven in
// exchange.cluster.test.ts, what it refuses to delete in security/reaper-proof.cluster.test.ts): retries with
// backoff and never gives up, RoleBinding before ServiceAccount, nothing deleted unless this
// replica holds the Lease, and expired JWT-use records pruned.
import { expect, test } from '@jest/globals';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { testReaper } from '../../../test/support/test-reaper.js';
import { createMetrics } from '../../../src/broker/metrics.js';
import type { AuditEvent } from '../../../src/broker/audit.js';
import { grantServiceAccount as sa, jwtUseRecord as record } from '../../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
const grantId = (hex: string) => `gha-${hex.repeat(32)}`;
const EXPIRED = grantId('e');
const LIVE = grantId('a');
const NO_EXPIRY = grantId('b');
/** JWT-use records without a grant (the JWT was refused later, or its grant was revoked). */
const OLD_RECORD = grantId('c');
const NEW_RECORD = grantId('d');

/** The broker's JWT-use record of a grant in namespace ci (grants/replay-ledger.ts). */
/** What a grant's RoleBindings look like: owned by its ServiceAccount. */
const ownedBy = (name: string, grant: string) => ({
  metadata: {
    name,
    uid: `uid-${name}`,
    ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: grant, uid: `uid-${grant}` }],
  },
});
function fakeCluster(opts: { failRoleBindingDeletes: number; leaseHeldBy?: string }) {
  const calls: string[] = [];
  let failures = opts.failRoleBindingDeletes;
  const serviceAccounts = [
    sa(EXPIRED, '2026-06-01T11:59:00Z'),
    sa(LIVE, '2026-06-01T13:00:00Z'),
    sa(NO_EXPIRY, 'garbage'),
  ];
  const deleted = new Set<string>();
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async () => ({
        items: serviceAccounts.filter((a) => !deleted.has(a.metadata.name)),
      }),
      deleteNamespacedServiceAccount: async ({ name }: { name: string }) => {
        calls.push(`delete sa ${name}`);
        deleted.add(name);
      },
    },
    rbac: {
      readNamespacedRoleBinding: async ({ name }: { name: string }) => ownedBy(name, name.slice(0, 36)),
      readNamespacedRole: async () => {
        throw apiError(404);
      },
      deleteNamespacedRoleBinding: async ({ name }: { name: string }) => {
        if (name === EXPIRED && failures > 0) {
          failures -= 1;
          calls.push(`fail rb ${name}`);
          throw apiError(500);
        }
        calls.push(`delete rb ${name}`);
      },
      deleteNamespacedRole: async () => {
        throw apiError(404);
      },
    },
    coordination: {
      readNamespacedLease: async ({ name }: { name: string }) => {
        if (!opts.leaseHeldBy) throw apiError(404);
        return {
          metadata: { name, resourceVersion: '1' },
          spec: { holderIdentity: opts.leaseHeldBy, renewTime: new Date(NOW), leaseDurationSeconds: 15 },
        };
      },
      createNamespacedLease: async () => ({}),
      replaceNamespacedLease: async () => ({}),
      listNamespacedLease: async () => ({
        items: [
          record(EXPIRED, '2026-06-01T12:10:00Z', '2026-06-01T11:59:00Z'),
          // Past its keep time, but its grant is still there: the record stays (no call names LIVE).
          record(LIVE, '2026-06-01T11:00:00Z', '2026-06-01T13:00:00Z'),
          record(NO_EXPIRY, '2026-06-01T13:00:00Z', '2026-06-01T13:00:00Z'),
          record(OLD_RECORD, '2026-06-01T11:00:00Z'),
          record(NEW_RECORD, '2026-06-01T12:10:00Z'),
        ],
      }),
      deleteNamespacedLease: async ({ name }: { name: string }) => void calls.push(`delete ledger ${name}`),
    },
  });
  return { k8s, calls };
}

function reaper(k8s: K8sClients, audit: AuditEvent[], metrics = createMetrics()) {
  return testReaper(k8s, { audit: { record: (e) => void audit.push(e) }, metrics, now: () => NOW });
}

test('expired (or unreadable-expiry) grants are deleted RoleBinding first; failures retry with backoff until done', async () => {
  const { k8s, calls } = fakeCluster({ failRoleBindingDeletes: 3 });
  const audit: AuditEvent[] = [];
  const r = reaper(k8s, audit);
  const passes = [];
  for (let i = 0; i < 8; i++) passes.push(await r.runOnce());
  expect(passes.every((p) => p.leader)).toBe(true);
  // Attempts on passes 1, 2, 4 (backoff 1, 2 passes) fail; 8 (backoff 4) succeeds. Never given up.
  expect(calls.filter((c) => c === `fail rb ${EXPIRED}`)).toHaveLength(3);
  expect(passes.findIndex((p) => p.reaped.includes(EXPIRED))).toBe(7);
  expect(passes.slice(0, 7).every((p) => p.failed.includes(EXPIRED))).toBe(true);
  // The grant without a readable expiry is treated as expired; the live one is never touched.
  expect(passes[0]!.reaped).toEqual([NO_EXPIRY]);
  expect(calls.some((c) => c.includes(LIVE))).toBe(false);
  const rb = calls.indexOf(`delete rb ${EXPIRED}`);
  const sa = calls.indexOf(`delete sa ${EXPIRED}`);
  expect(rb).toBeGreaterThanOrEqual(0);
  expect(sa).toBeGreaterThan(rb);
  expect(audit.map((a) => [a.action, a.grantId])).toEqual([
    ['reap', NO_EXPIRY],
    ['reap', EXPIRED],
  ]);
  // Only the expired JWT-use record is pruned.
  expect(calls).toContain(`delete ledger ${OLD_RECORD}`);
  expect(calls).not.toContain(`delete ledger ${NEW_RECORD}`);
});

test('a replica that does not hold the Lease deletes nothing', async () => {
  const { k8s, calls } = fakeCluster({ failRoleBindingDeletes: 0, leaseHeldBy: 'other-replica' });
  const result = await reaper(k8s, []).runOnce();
  expect(result.leader).toBe(false);
  expect(calls).toEqual([]);
});

test("the alerts' gauges: expired grants still present after a pass, and when the last pass ended", async () => {
  const metrics = createMetrics();
  const gauge = async (name: string) =>
    Number(
      new RegExp(`^${name} (\\S+)$`, 'm').exec(await metrics.registry.getSingleMetricAsString(name))?.[1],
    );
  const { k8s } = fakeCluster({ failRoleBindingDeletes: 1 });
  const r = reaper(k8s, [], metrics);
  await r.runOnce();
  // The deletion of EXPIRED failed: it is past expiry and still there.
  expect(await gauge('k8s_ea_expired_grants')).toBe(1);
  expect(await gauge('k8s_ea_reaper_last_pass_timestamp_seconds')).toBe(NOW / 1000);
  await r.runOnce(); // the retry succeeds
  expect(await gauge('k8s_ea_expired_grants')).toBe(0);
  // A replica without the Lease never claims a pass (0: the alert takes the maximum over replicas).
  const follower = createMetrics();
  const held = fakeCluster({ failRoleBindingDeletes: 0, leaseHeldBy: 'other-replica' });
  await reaper(held.k8s, [], follower).runOnce();
  expect(
    await follower.registry.getSingleMetricAsString('k8s_ea_reaper_last_pass_timestamp_seconds'),
  ).toMatch(/^k8s_ea_reaper_last_pass_timestamp_seconds 0$/m);
});
