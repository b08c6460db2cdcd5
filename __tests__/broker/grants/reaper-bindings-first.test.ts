// With many expired grants in a namespace, the reaper deletes every one's RoleBindings before any
// Role or ServiceAccount: the API server authorizes each call by walking the namespace's
// RoleBindings, so the rest of the pass walks a shorter list (docs/benchmarks.md, finding 10).
// Ownership still decides: a RoleBinding named after a grant but not owned by it is never deleted,
// and a failed binding deletion is retried by the grant's own deletion in the same pass.
import { expect, test } from '@jest/globals';
import { LIST_DEPENDENTS_FROM } from '../../../src/broker/grants/reaper.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { testReaper } from '../../../test/support/test-reaper.js';
import { grantServiceAccount as sa, jwtUseRecord } from '../../../test/support/grant-objects.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const grantId = (i: number) => `gha-${'b'.repeat(28)}${i.toString(16).padStart(4, '0')}`;
const tick = () => new Promise((r) => setTimeout(r, 1));

function cluster(expired: number, options: { foreignBinding?: string; failOnce?: string } = {}) {
  const calls: string[] = [];
  const items = Array.from({ length: expired }, (_, i) => sa(grantId(i), '2026-06-01T11:00:00Z'));
  const records = items.map((i) =>
    jwtUseRecord(i.metadata.name, '2026-06-01T13:00:00Z', '2026-06-01T11:00:00Z'),
  );
  const binding = (name: string, owner: string) => ({
    metadata: {
      name,
      uid: `uid-of-${name}`,
      ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', uid: owner }],
    },
  });
  const bindings = items.flatMap(({ metadata: { name } }) => [
    binding(name, name === options.foreignBinding ? 'uid-someone-else' : `uid-${name}`),
    binding(`${name}-revoke`, `uid-${name}`),
  ]);
  let failed = false;
  const k8s = scriptedClients({
    core: {
      listNamespacedServiceAccount: async () => ({ items }),
      deleteNamespacedServiceAccount: async ({ name }: { name: string }) => {
        await tick();
        calls.push(`sa ${name}`);
      },
    },
    rbac: {
      listNamespacedRoleBinding: async () => ({ items: bindings }),
      listNamespacedRole: async () => ({ items: [] }),
      deleteNamespacedRoleBinding: async ({ name }: { name: string }) => {
        await tick();
        if (name === options.failOnce && !failed) {
          failed = true;
          throw Object.assign(new Error('HTTP 500'), { code: 500 });
        }
        calls.push(`rb ${name}`);
      },
    },
    coordination: {
      readNamespacedLease: async () => {
        throw Object.assign(new Error('HTTP 404'), { code: 404 });
      },
      createNamespacedLease: async () => ({}),
      listNamespacedLease: async () => ({ items: records }),
    },
  });
  return { k8s, calls };
}

const reaper = (k8s: K8sClients) => testReaper(k8s, { now: () => NOW });

test('every expired grant loses its RoleBindings before any ServiceAccount is deleted', async () => {
  const n = LIST_DEPENDENTS_FROM * 2;
  const { k8s, calls } = cluster(n);
  const result = await reaper(k8s).runOnce();
  expect(result.reaped).toHaveLength(n);
  const lastBinding = Math.max(...calls.map((c, i) => (c.startsWith('rb ') ? i : -1)));
  const firstServiceAccount = calls.findIndex((c) => c.startsWith('sa '));
  expect(calls.filter((c) => c.startsWith('rb '))).toHaveLength(2 * n);
  expect(lastBinding).toBeLessThan(firstServiceAccount);
  // Each binding exactly once: the second phase does not delete them again.
  expect(new Set(calls).size).toBe(calls.length);
});

test('a binding not owned by its grant is left; a failed one is retried by the grant in the same pass', async () => {
  const foreign = grantId(3);
  const flaky = `${grantId(5)}-revoke`;
  const { k8s, calls } = cluster(LIST_DEPENDENTS_FROM, { foreignBinding: foreign, failOnce: flaky });
  const result = await reaper(k8s).runOnce();
  expect(result.reaped).toHaveLength(LIST_DEPENDENTS_FROM);
  expect(calls).not.toContain(`rb ${foreign}`);
  expect(calls).toContain(`rb ${flaky}`);
  expect(calls.indexOf(`rb ${flaky}`)).toBeLessThan(calls.indexOf(`sa ${grantId(5)}`));
});
