// The reaper's listings as live grants grow (docs/benchmarks.md, finding 20): every pass reads the
// JWT-use records and each namespace's ServiceAccounts a bounded page at a time, never as one
// answer of every object, and still proves and reaps the expired grants of every page.
import { expect, test } from '@jest/globals';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { testReaper } from '../../../test/support/test-reaper.js';
import { grantServiceAccount as sa, jwtUseRecord as record } from '../../../test/support/grant-objects.js';
import type { AuditEvent } from '../../../src/broker/audit.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const grantId = (i: number) => `gha-${String(i).repeat(32)}`;
const EXPIRED = [1, 2, 3, 4].map(grantId);
const LIVE = [5, 6].map(grantId);
const PAGE = 2;

/** A list the way the API server serves one: `limit` objects and a continue token, or all of them without a limit. */
function paged<T>(all: T[], what: string, asked: string[]) {
  return async ({ limit, _continue }: { limit?: number; _continue?: string }) => {
    asked.push(`${what} limit=${limit ?? 'none'}`);
    const from = Number(_continue ?? 0);
    const to = limit === undefined ? all.length : from + limit;
    return { items: all.slice(from, to), metadata: to < all.length ? { continue: String(to) } : {} };
  };
}

test('a pass lists records and ServiceAccounts in bounded pages and reaps the expired grants found on any page', async () => {
  const asked: string[] = [];
  const deleted: string[] = [];
  const serviceAccounts = [
    { metadata: { name: 'default', uid: 'uid-default' } },
    ...EXPIRED.map((id) => sa(id, '2026-06-01T11:59:00Z')),
    ...LIVE.map((id) => sa(id, '2026-06-01T13:00:00Z')),
  ];
  const records = [
    ...EXPIRED.map((id) => record(id, '2026-06-01T12:10:00Z', '2026-06-01T11:59:00Z')),
    ...LIVE.map((id) => record(id, '2026-06-01T12:10:00Z', '2026-06-01T13:00:00Z')),
  ];
  const gone = async () => {
    throw Object.assign(new Error('HTTP 404'), { code: 404 });
  };
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: paged(serviceAccounts, 'serviceaccounts', asked),
      deleteNamespacedServiceAccount: async ({ name }: { name: string }) => void deleted.push(name),
    },
    rbac: {
      readNamespacedRoleBinding: gone,
      readNamespacedRole: gone,
      deleteNamespacedRoleBinding: gone,
      deleteNamespacedRole: gone,
    },
    coordination: {
      readNamespacedLease: gone,
      createNamespacedLease: async () => ({}),
      listNamespacedLease: paged(records, 'leases', asked),
      deleteNamespacedLease: async () => ({}),
    },
  });
  const audit: AuditEvent[] = [];
  const reaper = testReaper(k8s, {
    now: () => NOW,
    listPageSize: PAGE,
    audit: { record: (e) => void audit.push(e) },
  });

  const result = await reaper.runOnce();

  expect(result.leader).toBe(true);
  // Every listing asked for a bounded page: 6 records in 3 pages, 7 ServiceAccounts in 4.
  expect(asked).toEqual([
    ...Array(3).fill(`leases limit=${PAGE}`),
    ...Array(4).fill(`serviceaccounts limit=${PAGE}`),
  ]);
  expect(result.seen).toBe(EXPIRED.length + LIVE.length);
  expect(deleted.sort()).toEqual([...EXPIRED].sort());
  expect(audit.map((a) => a.grantId).sort()).toEqual([...EXPIRED].sort());
  expect(result.forged).toEqual([]);
});
