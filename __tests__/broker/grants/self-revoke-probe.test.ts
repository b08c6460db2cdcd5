// The self-revoke guard's enforcement probe (src/broker/grants/self-revoke-probe.ts) over a scripted
// API: what each answer to the canary's dry-run deletion means, that the canary is always deleted
// (whichever call failed), that an earlier probe's leftovers are and another replica's running canary
// is not, and that its token appears in no problem. The real API
// server, enforcing and not, is __tests__/broker/grants/shared-self-revoke.cluster.test.ts.
import { expect, test } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import { guardProbe } from '../../../src/broker/grants/self-revoke-probe.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { createLogger } from '../../../src/broker/logger.js';
import { GRANT_ID_PATTERN, PART_LABEL } from '../../../src/broker/naming.js';

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

const NOW = Date.parse('2026-12-05T12:00:00Z');
const minutesAgo = (m: number) => new Date(NOW - m * 60_000).toISOString();

/**
 * A namespace of ServiceAccounts, Roles and RoleBindings; the canary's answers follow `answers`, the
 * last repeating; `canaries` are earlier ones (name → creation time), `failing` a call that fails.
 */
function scripted(
  answers: (Error | 'allowed')[],
  { canaries = {}, failing }: { canaries?: Record<string, string>; failing?: string } = {},
) {
  type Stored = { labels?: Record<string, string>; created?: string };
  const objects = new Map<string, Stored>();
  for (const [name, created] of Object.entries(canaries)) {
    objects.set(`sa/${name}`, { labels: { [PART_LABEL]: 'self-revoke-probe' }, created });
    objects.set(`role/${name}`, {});
    objects.set(`rb/${name}-probe`, {});
  }
  const fail = (call: string) => {
    if (call === failing) throw apiError(500, `${call} failed`);
  };
  const asked: { token: string; name: string }[] = [];
  /** RoleBindings made, as `name -> Role`. */
  const bindings: string[] = [];
  const hotPath = {
    createNamespacedServiceAccount: async (p: {
      body: { metadata: { name: string; labels: Record<string, string> } };
    }) => {
      fail('create ServiceAccount');
      objects.set(`sa/${p.body.metadata.name}`, {
        labels: p.body.metadata.labels,
        created: new Date(NOW).toISOString(),
      });
      return { metadata: { name: p.body.metadata.name, uid: 'uid-1' } };
    },
    createNamespacedRole: async (p: {
      body: { metadata: { name: string }; rules: { resourceNames: string[] }[] };
    }) => {
      fail('create Role');
      objects.set(`role/${p.body.metadata.name}`, {});
      bindings.push(`${p.body.metadata.name} may delete ${p.body.rules.map((r) => r.resourceNames).join()}`);
      return {};
    },
    createNamespacedRoleBinding: async (p: {
      body: { metadata: { name: string }; roleRef: { name: string } };
    }) => {
      objects.set(`rb/${p.body.metadata.name}`, {});
      bindings.push(`${p.body.metadata.name} -> ${p.body.roleRef.name}`);
      return {};
    },
    createNamespacedServiceAccountToken: async () => {
      fail('create token');
      return { status: { token: TOKEN } };
    },
    deleteNamespacedRoleBinding: async (p: { name: string }) => {
      if (!objects.delete(`rb/${p.name}`)) throw apiError(404, 'not found');
    },
    deleteNamespacedServiceAccount: async (p: { name: string }) => {
      fail('delete ServiceAccount');
      if (!objects.delete(`sa/${p.name}`)) throw apiError(404, 'not found');
    },
    deleteNamespacedRole: async (p: { name: string }) => {
      if (!objects.delete(`role/${p.name}`)) throw apiError(404, 'not found');
    },
    listNamespacedServiceAccount: async (p: { labelSelector?: string }) => {
      // The selector the sweep must send: the canary's label, never a grant's managed-by label.
      expect(p.labelSelector).toBe(`${PART_LABEL}=self-revoke-probe,!app.kubernetes.io/managed-by`);
      return {
        items: [...objects]
          .filter(([k, o]) => k.startsWith('sa/') && o.labels?.[PART_LABEL] === 'self-revoke-probe')
          .map(([k, o]) => ({ metadata: { name: k.slice(3), creationTimestamp: o.created } })),
      };
    },
  };
  const errors: unknown[] = [];
  const probe = guardProbe({
    k8s: { hotPath } as unknown as K8sClients,
    kc: {} as KubeConfig,
    logger: createLogger({ write: (l) => void errors.push(JSON.parse(l)) }),
    now: () => NOW,
    rbacSettleMs: 300,
    deleteAs: async (token, _namespace, name) => {
      asked.push({ token, name });
      // What the canary may not do is only ever asked as a dry run: the binding stays.
      if (!objects.has(`rb/${name}`)) throw apiError(404, 'not found');
      const answer = answers[Math.min(asked.length - 1, answers.length - 1)]!;
      if (answer !== 'allowed') throw answer;
    },
  });
  return { probe, objects, asked, bindings, errors };
}

test('the guard refuses the canary: no problem; the canary, with a Role of its own for that one deletion, asked with its own token, and is gone', async () => {
  const { probe, objects, asked, bindings } = scripted([GUARD_REFUSAL]);
  expect(await probe('ns-a')).toEqual([]);
  expect(asked).toEqual([{ token: TOKEN, name: expect.stringMatching(/-probe$/) }]);
  const canary = asked[0]!.name.replace(/-probe$/, '');
  expect(canary).toMatch(GRANT_ID_PATTERN);
  // Not the shared self-revoke Role: probing never brings it back for grants still bound to it.
  expect(bindings).toEqual([`${canary} may delete ${canary}-probe`, `${canary}-probe -> ${canary}`]);
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

test("an earlier probe's canary (its broker killed mid-probe) is deleted first; another replica's, 30 s old, is not", async () => {
  const old = `gha-${'1'.repeat(32)}`;
  const running = `gha-${'2'.repeat(32)}`;
  const { probe, objects } = scripted([GUARD_REFUSAL], {
    canaries: { [old]: minutesAgo(3), [running]: minutesAgo(0.5) },
  });
  expect(await probe('ns-a')).toEqual([]);
  expect([...objects.keys()].sort()).toEqual([`rb/${running}-probe`, `role/${running}`, `sa/${running}`]);
});

test.each(['create Role', 'create token'])(
  'a failed call (%s): a problem, and the canary made so far is gone',
  async (failing) => {
    const { probe, objects } = scripted([GUARD_REFUSAL], { failing });
    expect(await probe('ns-a')).toEqual([
      expect.stringMatching(`could not make its canary.*${failing} failed`),
    ]);
    expect([...objects.keys()]).toEqual([]);
  },
);

test('a deletion that fails is logged, and the other objects of the canary are deleted all the same', async () => {
  const { probe, objects, errors } = scripted([GUARD_REFUSAL], { failing: 'delete ServiceAccount' });
  expect(await probe('ns-a')).toEqual([]);
  expect([...objects.keys()]).toEqual([expect.stringMatching(/^sa\/gha-/)]);
  expect(errors).toEqual([
    expect.objectContaining({
      msg: "cannot delete the self-revoke probe's canary; the next probe retries",
      errors: [expect.stringContaining('delete ServiceAccount failed')],
    }),
  ]);
});
