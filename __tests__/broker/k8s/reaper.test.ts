// Reaper logic with a scripted Kubernetes fake (the real-cluster reaping is proven in
// exchange.test.ts): retries with backoff and never gives up, RoleBinding before ServiceAccount,
// nothing deleted unless this replica holds the Lease, and expired JWT-use records pruned.
import { expect, test } from '@jest/globals';
import { Reaper } from '../../../src/broker/k8s/reaper.js';
import type { K8sClients } from '../../../src/broker/k8s/clients.js';
import { silentLogger } from '../../../test/support/logger.js';
import { createMetrics } from '../../../src/broker/metrics.js';
import type { AuditEvent } from '../../../src/broker/audit.js';
import { grantServiceAccount as sa } from '../../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

function fakeCluster(opts: { failRoleBindingDeletes: number; leaseHeldBy?: string }) {
  const calls: string[] = [];
  let failures = opts.failRoleBindingDeletes;
  const serviceAccounts = [
    sa('gha-expired', '2026-06-01T11:59:00Z'),
    sa('gha-live', '2026-06-01T13:00:00Z'),
    sa('gha-noexpiry', 'garbage'),
  ];
  const deleted = new Set<string>();
  const k8s = {
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
      deleteNamespacedRoleBinding: async ({ name }: { name: string }) => {
        if (name === 'gha-expired' && failures > 0) {
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
          {
            metadata: {
              name: 'gha-old',
              annotations: { 'k8s-ephemeral-access.io/expires-at': '2026-06-01T11:00:00Z' },
            },
          },
          {
            metadata: {
              name: 'gha-new',
              annotations: { 'k8s-ephemeral-access.io/expires-at': '2026-06-01T12:10:00Z' },
            },
          },
        ],
      }),
      deleteNamespacedLease: async ({ name }: { name: string }) => void calls.push(`delete ledger ${name}`),
    },
  } as unknown as K8sClients;
  return { k8s, calls };
}

function reaper(k8s: K8sClients, audit: AuditEvent[]) {
  return new Reaper(k8s, {
    namespaces: () => ['ci'],
    intervalSeconds: 1,
    lease: { namespace: 'broker', name: 'reaper', identity: 'me' },
    logger: silentLogger,
    audit: { record: (e) => void audit.push(e) },
    metrics: createMetrics(),
    now: () => NOW,
  });
}

test('expired (or unreadable-expiry) grants are deleted RoleBinding first; failures retry with backoff until done', async () => {
  const { k8s, calls } = fakeCluster({ failRoleBindingDeletes: 3 });
  const audit: AuditEvent[] = [];
  const r = reaper(k8s, audit);
  const passes = [];
  for (let i = 0; i < 8; i++) passes.push(await r.runOnce());
  expect(passes.every((p) => p.leader)).toBe(true);
  // Attempts on passes 1, 2, 4 (backoff 1, 2 passes) fail; 8 (backoff 4) succeeds. Never given up.
  expect(calls.filter((c) => c === 'fail rb gha-expired')).toHaveLength(3);
  expect(passes.findIndex((p) => p.reaped.includes('gha-expired'))).toBe(7);
  expect(passes.slice(0, 7).every((p) => p.failed.includes('gha-expired'))).toBe(true);
  // The grant without a readable expiry is treated as expired; the live one is never touched.
  expect(passes[0]!.reaped).toEqual(['gha-noexpiry']);
  expect(calls.some((c) => c.includes('gha-live'))).toBe(false);
  const rb = calls.indexOf('delete rb gha-expired');
  const sa = calls.indexOf('delete sa gha-expired');
  expect(rb).toBeGreaterThanOrEqual(0);
  expect(sa).toBeGreaterThan(rb);
  expect(audit.map((a) => [a.action, a.grantId])).toEqual([
    ['reap', 'gha-noexpiry'],
    ['reap', 'gha-expired'],
  ]);
  // Only the expired JWT-use record is pruned.
  expect(calls).toContain('delete ledger gha-old');
  expect(calls).not.toContain('delete ledger gha-new');
});

test('a replica that does not hold the Lease deletes nothing', async () => {
  const { k8s, calls } = fakeCluster({ failRoleBindingDeletes: 0, leaseHeldBy: 'other-replica' });
  const result = await reaper(k8s, []).runOnce();
  expect(result.leader).toBe(false);
  expect(calls).toEqual([]);
});
