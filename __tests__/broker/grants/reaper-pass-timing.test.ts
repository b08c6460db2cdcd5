// What stands between a common expiry and the reaper's first deletion (docs/benchmarks.md, the
// reaper at scale): the pass must start just after the expiry, not after a pass at the interval
// that happened to be running then, and its listings must not wait for each other. A scripted
// fake stands in for the API: what is checked is the order of the calls and the schedule.
import { expect, test } from '@jest/globals';
import { LIST_DEPENDENTS_FROM, nextPassDelay } from '../../../src/broker/grants/reaper.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { testReaper } from '../../../test/support/test-reaper.js';
import { grantServiceAccount as sa, jwtUseRecord } from '../../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const PAST = '2026-06-01T11:00:00Z';
const FUTURE = '2026-06-01T13:00:00Z';
const grantId = (i: number) => `gha-${'c'.repeat(28)}${i.toString(16).padStart(4, '0')}`;
const tick = () => new Promise((r) => setTimeout(r, 1));

const BEFORE = Date.parse('2026-06-01T10:00:00Z');

/**
 * `n` grants whose ServiceAccounts and records say they expired at 11:00 (with `recordsOnly`, the
 * ServiceAccounts are gone already: revoked grants, whose records stay until their JWTs expire).
 */
function cluster(n: number, options: { recordsOnly?: boolean } = {}) {
  const calls: string[] = [];
  const grants = Array.from({ length: n }, (_, i) => sa(grantId(i), PAST));
  const items = options.recordsOnly ? [] : grants;
  const records = grants.map((i) => jwtUseRecord(i.metadata.name, FUTURE, PAST));
  const bindings = items.map(({ metadata: { name } }) => ({
    metadata: {
      name,
      uid: `uid-of-${name}`,
      ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', uid: `uid-${name}` }],
    },
  }));
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async () => {
        calls.push('list serviceaccounts: sent');
        for (let i = 0; i < 5; i += 1) await tick();
        calls.push('list serviceaccounts: answered');
        return { items };
      },
      deleteNamespacedServiceAccount: async () => undefined,
    },
    rbac: {
      listNamespacedRoleBinding: async () => {
        calls.push('list rolebindings: sent');
        return { items: bindings };
      },
      listNamespacedRole: async () => ({ items: [] }),
      readNamespacedRoleBinding: async () => {
        calls.push('read rolebinding');
        throw Object.assign(new Error('HTTP 404'), { code: 404 });
      },
      readNamespacedRole: async () => {
        throw Object.assign(new Error('HTTP 404'), { code: 404 });
      },
      deleteNamespacedRoleBinding: async () => undefined,
    },
    coordination: {
      readNamespacedLease: async () => {
        throw Object.assign(new Error('HTTP 404'), { code: 404 });
      },
      createNamespacedLease: async () => ({}),
      replaceNamespacedLease: async () => ({}),
      listNamespacedLease: async () => ({ items: records }),
    },
  });
  return { k8s, calls };
}

/** A pass before the grants' expiry (nothing to reap), then the calls of one after it. */
async function passAfterExpiry(k8s: K8sClients, calls: string[]) {
  let now = BEFORE;
  const reaper = testReaper(k8s, { now: () => now });
  expect((await reaper.runOnce()).reaped).toEqual([]);
  calls.length = 0;
  now = NOW;
  return reaper.runOnce();
}

test('when the records say many grants seen on the last pass expired, Roles and RoleBindings are listed beside the ServiceAccounts', async () => {
  const { k8s, calls } = cluster(LIST_DEPENDENTS_FROM);
  const result = await passAfterExpiry(k8s, calls);
  expect(result.reaped).toHaveLength(LIST_DEPENDENTS_FROM);
  expect(calls.indexOf('list rolebindings: sent')).toBeGreaterThanOrEqual(0);
  expect(calls.indexOf('list rolebindings: sent')).toBeLessThan(
    calls.indexOf('list serviceaccounts: answered'),
  );
  expect(calls.filter((c) => c === 'list rolebindings: sent')).toHaveLength(1);
  expect(calls).not.toContain('read rolebinding');
});

test('on a first pass the listing follows the ServiceAccounts, as before (the control)', async () => {
  const { k8s, calls } = cluster(LIST_DEPENDENTS_FROM);
  const result = await testReaper(k8s, { now: () => NOW }).runOnce();
  expect(result.reaped).toHaveLength(LIST_DEPENDENTS_FROM);
  expect(calls.indexOf('list rolebindings: sent')).toBeGreaterThan(
    calls.indexOf('list serviceaccounts: answered'),
  );
  expect(calls.filter((c) => c === 'list rolebindings: sent')).toHaveLength(1);
  expect(calls).not.toContain('read rolebinding');
});

test('the records of grants already gone start no listing', async () => {
  const { k8s, calls } = cluster(LIST_DEPENDENTS_FROM * 2, { recordsOnly: true });
  const result = await passAfterExpiry(k8s, calls);
  expect(result.reaped).toEqual([]);
  expect(calls).not.toContain('list rolebindings: sent');
});

test('the next pass: the interval, or just after a known expiry, and never overlapping that expiry', () => {
  const at = (o: { nextExpiry?: number; lastPassMs?: number }) =>
    nextPassDelay({ intervalMs: 1000, now: 10_000, lastPassMs: 0, nextExpiry: undefined, ...o });
  expect(at({})).toBe(1000);
  // Sooner than the interval: 50 ms after the expiry.
  expect(at({ nextExpiry: 10_600 })).toBe(650);
  // Already past: the shortest gap.
  expect(at({ nextExpiry: 9_000 })).toBe(250);
  // Far beyond the interval: the interval.
  expect(at({ nextExpiry: 20_000, lastPassMs: 400 })).toBe(1000);
  // Just beyond the interval, where a pass at the interval (taking 400 ms like the last one, then
  // the 250 ms gap) would still hold the expiry back: the pass waits for the expiry instead.
  expect(at({ nextExpiry: 11_300, lastPassMs: 400 })).toBe(1350);
  expect(at({ nextExpiry: 11_600, lastPassMs: 400 })).toBe(1650);
  // A pass at the interval that ends with room to spare still runs.
  expect(at({ nextExpiry: 11_700, lastPassMs: 400 })).toBe(1000);
  expect(at({ nextExpiry: 11_300, lastPassMs: 0 })).toBe(1000);
});
