// The self-revoke guard's enforcement probe (src/broker/grants/self-revoke-probe.ts) over a scripted
// API: what each answer to the canary's dry-run deletion means, that the canary is always deleted,
// that an earlier probe's leftovers are, and that its token appears in no problem. The real API
// server, enforcing and not, is __tests__/broker/grants/shared-self-revoke.cluster.test.ts.
import { expect, test } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import { guardProbe } from '../../../src/broker/grants/self-revoke-probe.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { GRANT_ID_PATTERN, PART_LABEL, SELF_REVOKE_ROLE } from '../../../src/broker/naming.js';

const TOKEN = 'canary-token-never-shown';
const apiError = (code: number, message: string) =>
  Object.assign(new Error(`HTTP ${code}`), { code, body: JSON.stringify({ kind: 'Status', message }) });
const GUARD_REFUSAL = apiError(
  403,
  `rolebindings.rbac.authorization.k8s.io "x-probe" is forbidden: ValidatingAdmissionPolicy 'k8s-ea-self-revoke-guard' with binding 'k8s-ea-self-revoke-guard' denied request: a CI grant may delete only its own ServiceAccount and its own RoleBindings`,
);
const RBAC_REFUSAL = apiError(
  403,
  'rolebindings.rbac.authorization.k8s.io "x-probe" is forbidden: User "system:serviceaccount:ns-a:gha-x" cannot delete resource "rolebindings"',
);

/** A namespace of ServiceAccounts and RoleBindings; the canary's answers follow `answers`, the last repeating. */
function scripted(answers: (Error | 'allowed')[], leftover?: string) {
  const objects = new Map<string, { labels?: Record<string, string> }>();
  if (leftover) {
    objects.set(`sa/${leftover}`, { labels: { [PART_LABEL]: 'self-revoke-probe' } });
    objects.set(`rb/${leftover}-probe`, {});
  }
  const asked: { token: string; name: string }[] = [];
  /** RoleBindings made, as `name -> Role`. */
  const bindings: string[] = [];
  const hotPath = {
    createNamespacedServiceAccount: async (p: {
      body: { metadata: { name: string; labels: Record<string, string> } };
    }) => {
      objects.set(`sa/${p.body.metadata.name}`, { labels: p.body.metadata.labels });
      return { metadata: { name: p.body.metadata.name, uid: 'uid-1' } };
    },
    createNamespacedRoleBinding: async (p: {
      body: { metadata: { name: string }; roleRef: { name: string } };
    }) => {
      objects.set(`rb/${p.body.metadata.name}`, {});
      bindings.push(`${p.body.metadata.name} -> ${p.body.roleRef.name}`);
      return {};
    },
    createNamespacedServiceAccountToken: async () => ({ status: { token: TOKEN } }),
    deleteNamespacedRoleBinding: async (p: { name: string }) => {
      if (!objects.delete(`rb/${p.name}`)) throw apiError(404, 'not found');
    },
    deleteNamespacedServiceAccount: async (p: { name: string }) => {
      if (!objects.delete(`sa/${p.name}`)) throw apiError(404, 'not found');
    },
    listNamespacedServiceAccount: async (p: { labelSelector?: string }) => ({
      items: [...objects]
        .filter(
          ([k, o]) => k.startsWith('sa/') && `${PART_LABEL}=${o.labels?.[PART_LABEL]}` === p.labelSelector,
        )
        .map(([k]) => ({ metadata: { name: k.slice(3) } })),
    }),
  };
  const probe = guardProbe({
    k8s: { hotPath } as unknown as K8sClients,
    kc: {} as KubeConfig,
    rbacSettleMs: 300,
    deleteAs: async (token, _namespace, name) => {
      asked.push({ token, name });
      // What the canary may not do is only ever asked as a dry run: the binding stays.
      if (!objects.has(`rb/${name}`)) throw apiError(404, 'not found');
      const answer = answers[Math.min(asked.length - 1, answers.length - 1)]!;
      if (answer !== 'allowed') throw answer;
    },
  });
  return { probe, objects, asked, bindings };
}

test('the guard refuses the canary: no problem; the canary bound the shared Role, asked with its own token, and is gone', async () => {
  const { probe, objects, asked, bindings } = scripted([GUARD_REFUSAL]);
  expect(await probe('ns-a')).toEqual([]);
  expect(asked).toEqual([{ token: TOKEN, name: expect.stringMatching(/-probe$/) }]);
  const canary = asked[0]!.name.replace(/-probe$/, '');
  expect(canary).toMatch(GRANT_ID_PATTERN);
  expect(bindings).toEqual([`${canary}-probe -> ${SELF_REVOKE_ROLE}`]);
  expect([...objects.keys()]).toEqual([]);
});

test.each([
  ['the deletion allowed (no admission plugin)', ['allowed'] as const, /does not enforce the guard/],
  [
    'RBAC refusing for longer than it takes to see a binding',
    [RBAC_REFUSAL],
    /not refused by the guard: .*cannot delete/,
  ],
  ['another answer', [apiError(500, 'etcd timeout')], /not refused by the guard: .*etcd timeout/],
])('%s: a problem naming it, the token in none, and the canary gone', async (_, answers, problem) => {
  const { probe, objects } = scripted([...answers]);
  const problems = await probe('ns-a');
  expect(problems).toEqual([expect.stringMatching(problem)]);
  expect(problems.join()).not.toContain(TOKEN);
  expect([...objects.keys()]).toEqual([]);
});

test("RBAC refusing while it has not yet seen the canary's binding, then the guard: no problem", async () => {
  const { probe, asked } = scripted([RBAC_REFUSAL, RBAC_REFUSAL, GUARD_REFUSAL]);
  expect(await probe('ns-a')).toEqual([]);
  expect(asked).toHaveLength(3);
});

test("an earlier probe's canary (its broker killed mid-probe) is deleted first", async () => {
  const { probe, objects } = scripted([GUARD_REFUSAL], `gha-${'1'.repeat(32)}`);
  expect(await probe('ns-a')).toEqual([]);
  expect([...objects.keys()]).toEqual([]);
});
