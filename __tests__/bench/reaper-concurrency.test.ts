// The reaper deletes expired grants several at a time (the fix for the linear reap lag the
// benchmark measured), bounded so it cannot flood the API server, and still deletes each grant's
// RoleBinding before its ServiceAccount. Pure scheduling logic, so a scripted fake whose deletes
// take a little time stands in for the API; real-cluster reaping is in the broker's tests and
// measured by bench/scenarios/reaper.ts.
import { expect, test } from '@jest/globals';
import { LIST_DEPENDENTS_FROM, REAP_CONCURRENCY } from '../../src/broker/grants/reaper.js';
import type { K8sClients } from '../../src/broker/kube/clients.js';
import { scriptedClients } from '../../test/support/scripted-clients.js';
import { testReaper } from '../../test/support/test-reaper.js';
import { grantServiceAccount as sa, jwtUseRecord } from '../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const notFound = () => Object.assign(new Error('HTTP 404'), { code: 404 });
const tick = () => new Promise((r) => setTimeout(r, 2));
const grantId = (kind: 'e' | 'a', i: number) => `gha-${kind.repeat(28)}${i.toString(16).padStart(4, '0')}`;

function fakeCluster(expired: number, live: number) {
  const calls: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const track = async (what: string) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await tick();
    calls.push(what);
    inFlight -= 1;
  };
  const items = [
    ...Array.from({ length: expired }, (_, i) => sa(grantId('e', i), '2026-06-01T11:00:00Z')),
    ...Array.from({ length: live }, (_, i) => sa(grantId('a', i), '2026-06-01T13:00:00Z')),
  ];
  // The broker's JWT-use records, which prove each one a grant of namespace ci (grants/replay-ledger.ts).
  const records = items.map((i) =>
    jwtUseRecord(
      i.metadata.name,
      '2026-06-01T13:00:00Z',
      i.metadata.annotations['k8s-ephemeral-access.io/expires-at'],
    ),
  );
  // Reads answer at once: what is measured is the deletes in flight.
  const owned = ({ name }: { name: string }) => ({
    metadata: {
      name,
      uid: `uid-of-${name}`,
      ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', uid: `uid-${name.slice(0, 36)}` }],
    },
  });
  let reads = 0;
  // From LIST_DEPENDENTS_FROM expired grants on, the reaper lists these once instead of reading.
  const bindings = items.flatMap((i) => [owned(i.metadata), owned({ name: `${i.metadata.name}-revoke` })]);
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async () => ({ items }),
      deleteNamespacedServiceAccount: ({ name }: { name: string }) => track(`sa ${name}`),
    },
    rbac: {
      listNamespacedRoleBinding: async () => ({ items: bindings }),
      listNamespacedRole: async () => ({ items: [] }),
      readNamespacedRoleBinding: async (o: { name: string }) => (reads++, owned(o)),
      readNamespacedRole: async () => {
        reads++;
        throw notFound();
      },
      deleteNamespacedRoleBinding: ({ name }: { name: string }) => track(`rb ${name}`),
      deleteNamespacedRole: async () => {
        throw notFound();
      },
    },
    coordination: {
      readNamespacedLease: async () => {
        throw notFound();
      },
      createNamespacedLease: async () => ({}),
      listNamespacedLease: async () => ({ items: records }),
    },
  });
  return { k8s, calls, maxInFlight: () => maxInFlight, reads: () => reads };
}

const reaper = (k8s: K8sClients, concurrency?: number) => testReaper(k8s, { now: () => NOW, concurrency });

test('expired grants are deleted in parallel, never more than the limit at once', async () => {
  const { k8s, calls, maxInFlight, reads } = fakeCluster(40, 5);
  const result = await reaper(k8s).runOnce();
  expect(result.reaped).toHaveLength(40);
  expect(40).toBeGreaterThanOrEqual(LIST_DEPENDENTS_FROM);
  expect(reads()).toBe(0);
  expect(result.reaped.some((g) => g.startsWith('gha-a'))).toBe(false);
  expect(maxInFlight()).toBeGreaterThan(1);
  // Each grant has at most two deletes of its own in flight (the parallel Role/revoke deletes 404 at once).
  expect(maxInFlight()).toBeLessThanOrEqual(REAP_CONCURRENCY * 2);
  for (let i = 0; i < 40; i += 1)
    expect(calls.indexOf(`rb ${grantId('e', i)}`)).toBeLessThan(calls.indexOf(`sa ${grantId('e', i)}`));
});

test('concurrency 1 is strictly one grant at a time (the old behaviour, as a control)', async () => {
  const { k8s, maxInFlight, reads } = fakeCluster(10, 0);
  const result = await reaper(k8s, 1).runOnce();
  expect(result.reaped).toHaveLength(10);
  // Below LIST_DEPENDENTS_FROM each grant reads its four dependents.
  expect(reads()).toBe(40);
  expect(maxInFlight()).toBe(1);
});

test('a pass runs just after the next expiry it knows of, not an interval later', async () => {
  // A real clock and an hour-long interval: only the expiry-driven schedule can reap this grant.
  const expiresAt = new Date(Date.now() + 400).toISOString();
  const id = grantId('e', 0);
  const record = {
    metadata: {
      name: id,
      labels: { 'k8s-ephemeral-access.io/namespace': 'ci' },
      annotations: {
        'k8s-ephemeral-access.io/expires-at': '2999-01-01T00:00:00Z',
        'k8s-ephemeral-access.io/grant-expires-at': expiresAt,
      },
    },
  };
  let passes = 0;
  let items = [sa(id, expiresAt)];
  const deleted: string[] = [];
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async () => ({ items }),
      deleteNamespacedServiceAccount: async ({ name }: { name: string }) => {
        deleted.push(name);
        items = [];
      },
    },
    rbac: {
      readNamespacedRoleBinding: async () => {
        throw notFound();
      },
      readNamespacedRole: async () => {
        throw notFound();
      },
    },
    coordination: {
      readNamespacedLease: async () => {
        throw notFound();
      },
      createNamespacedLease: async () => ({}),
      replaceNamespacedLease: async () => ({}),
      deleteNamespacedLease: async () => undefined,
      listNamespacedLease: async () => {
        passes += 1;
        return { items: [record] };
      },
    },
  });
  const r = testReaper(k8s, { intervalSeconds: 3600 });
  r.start();
  try {
    // A generous bound against hangs only; the interval is an hour.
    const until = Date.now() + 10_000;
    while (deleted.length === 0 && Date.now() < until) await tick();
  } finally {
    await r.stop();
  }
  expect(deleted).toEqual([id]);
  // The pass at start, then the one at the expiry.
  expect(passes).toBe(2);
});

test('a deletion that failed on the client but took effect is still a reaped (and audited) grant', async () => {
  const { k8s } = fakeCluster(2, 0);
  const gone = new Set<string>();
  const core = k8s.core as unknown as Record<string, unknown>;
  // The API server applies the delete, but the answer never arrives (the client's deadline fires).
  core.deleteNamespacedServiceAccount = async ({ name }: { name: string }) => {
    gone.add(name);
    throw new Error('This operation was aborted');
  };
  core.readNamespacedServiceAccount = async ({ name }: { name: string }) => {
    if (gone.has(name)) throw notFound();
    return sa(name, '2026-06-01T11:00:00Z');
  };
  const audit: string[] = [];
  const r = testReaper(k8s, { audit: { record: (e) => void audit.push(String(e.grantId)) }, now: () => NOW });
  const result = await r.runOnce();
  expect(result.reaped.sort()).toEqual([grantId('e', 0), grantId('e', 1)]);
  expect(result.failed).toEqual([]);
  expect(audit.sort()).toEqual([grantId('e', 0), grantId('e', 1)]);

  // The control: the delete fails and the ServiceAccount is still there: a failure, retried later.
  const { k8s: k2 } = fakeCluster(1, 0);
  const core2 = k2.core as unknown as Record<string, unknown>;
  core2.deleteNamespacedServiceAccount = async () => {
    throw new Error('This operation was aborted');
  };
  core2.readNamespacedServiceAccount = async ({ name }: { name: string }) => sa(name, '2026-06-01T11:00:00Z');
  const r2 = await reaper(k2).runOnce();
  expect(r2.reaped).toEqual([]);
  expect(r2.failed).toEqual([grantId('e', 0)]);
});
