// When the broker binds the shared self-revoke Role (src/broker/grants/shared-self-revoke.ts), over
// scripted reads of the guard and a scripted enforcement probe: only after two reads that agree and a
// probe the guard refused, never while a read fails or finds it weaker, and every fall-back deletes
// the shared Role so no grant keeps an unguarded permission. The real API server's side is
// __tests__/broker/grants/shared-self-revoke.cluster.test.ts.
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { PROBE_RETRY_MS, SharedSelfRevoke } from '../../../src/broker/grants/shared-self-revoke.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { SELF_REVOKE_ROLE } from '../../../src/broker/naming.js';
import { repoRoot } from '../../../test/support/repo-root.js';

type Doc = { kind: string; metadata: { resourceVersion?: string }; spec: Record<string, unknown> };
const docs = loadAll(readFileSync(join(repoRoot, 'deploy', 'self-revoke-guard.yaml'), 'utf8')) as Doc[];
const served = (kind: string, resourceVersion: string) => {
  const d = JSON.parse(JSON.stringify(docs.find((x) => x.kind === kind))) as Doc;
  d.metadata.resourceVersion = resourceVersion;
  return d;
};
const notFound = () => Object.assign(new Error('not found'), { code: 404 });

/** The guard as the cluster holds it now; the calls made, as `verb kind namespace/name`. */
function scripted() {
  const state = {
    policy: served('ValidatingAdmissionPolicy', '1') as Doc | undefined,
    binding: served('ValidatingAdmissionPolicyBinding', '1') as Doc | undefined,
    readError: undefined as Error | undefined,
    roleExists: false,
    /** What the enforcement probe finds: [] when the guard refused its canary. */
    probeProblems: [] as string[],
  };
  const calls: string[] = [];
  const probe = async (namespace: string) => {
    calls.push(`probe ${namespace}`);
    return state.probeProblems;
  };
  const read = (what: 'policy' | 'binding') => async () => {
    if (state.readError) throw state.readError;
    const o = state[what];
    if (!o) throw notFound();
    return JSON.parse(JSON.stringify(o)) as Doc;
  };
  const k8s = {
    admission: {
      readValidatingAdmissionPolicy: read('policy'),
      readValidatingAdmissionPolicyBinding: read('binding'),
    },
    rbac: {
      readNamespacedRole: async (p: { namespace: string; name: string }) => {
        calls.push(`get Role ${p.namespace}/${p.name}`);
        if (!state.roleExists) throw notFound();
        return {
          metadata: { name: p.name, labels: { 'app.kubernetes.io/managed-by': 'k8s-ephemeral-access' } },
        };
      },
      createNamespacedRole: async (p: { namespace: string; body: { metadata: { name: string } } }) => {
        calls.push(`create Role ${p.namespace}/${p.body.metadata.name}`);
        state.roleExists = true;
        return p.body;
      },
      replaceNamespacedRole: async (p: { namespace: string; name: string }) => {
        calls.push(`update Role ${p.namespace}/${p.name}`);
        return {};
      },
    },
    hotPath: {
      deleteNamespacedRole: async (p: { namespace: string; name: string }) => {
        calls.push(`delete Role ${p.namespace}/${p.name}`);
        if (!state.roleExists) throw notFound();
        state.roleExists = false;
        return {};
      },
    },
  } as unknown as K8sClients;
  return { state, calls, k8s, probe };
}

function subject({ k8s, probe }: Pick<ReturnType<typeof scripted>, 'k8s' | 'probe'>) {
  const changes: boolean[] = [];
  const clock = { now: 1_000_000 };
  const shared = new SharedSelfRevoke(k8s, {
    namespaces: () => ['ns-a'],
    probe,
    onChange: (s) => changes.push(s),
    now: () => clock.now,
  });
  return { shared, changes, clock };
}

test('two agreeing reads before the shared Role is used; then it is created once and bound', async () => {
  const script = scripted();
  const { calls } = script;
  const { shared, changes } = subject(script);
  await shared.check();
  expect(await shared.roleFor('ns-a')).toBeUndefined();
  await shared.check();
  expect(changes).toEqual([true]);
  expect(await shared.roleFor('ns-a')).toBe(SELF_REVOKE_ROLE);
  expect(await shared.roleFor('ns-a')).toBe(SELF_REVOKE_ROLE);
  expect(calls.filter((c) => c.startsWith('create'))).toEqual([`create Role ns-a/${SELF_REVOKE_ROLE}`]);
  // The probe comes before the shared Role exists: its canary has a Role of its own.
  expect(calls.filter((c) => /^(probe|create)/.test(c))).toEqual([
    'probe ns-a',
    `create Role ns-a/${SELF_REVOKE_ROLE}`,
  ]);
});

test('while grants bind the shared Role the probe is repeated every PROBE_RETRY_MS; one the guard no longer passes brings the pair back', async () => {
  const script = scripted();
  const { state, calls } = script;
  const { shared, changes, clock } = subject(script);
  const probes = () => calls.filter((c) => c.startsWith('probe')).length;
  await shared.check();
  await shared.check();
  expect(changes).toEqual([true]);
  clock.now += PROBE_RETRY_MS - 1;
  await shared.check();
  expect(probes()).toBe(1);
  clock.now += 1;
  state.probeProblems = ['a grant identity was allowed to delete a RoleBinding'];
  await shared.check();
  expect(probes()).toBe(2);
  expect(changes).toEqual([true, false]);
  expect(state.roleExists).toBe(false);
  await shared.stop();
});

test('a probe the guard did not refuse keeps the pair and leaves no shared Role; it is not repeated for the same objects, and is at once for changed ones', async () => {
  const script = scripted();
  const { state, calls } = script;
  state.probeProblems = ['a grant identity was allowed to delete a RoleBinding not its own'];
  const { shared, changes } = subject(script);
  for (let i = 0; i < 4; i++) await shared.check();
  expect(changes).toEqual([]);
  expect(await shared.roleFor('ns-a')).toBeUndefined();
  expect(state.roleExists).toBe(false);
  expect(calls.filter((c) => c.startsWith('probe'))).toHaveLength(1);

  state.probeProblems = [];
  state.binding = served('ValidatingAdmissionPolicyBinding', '2');
  await shared.check();
  await shared.check();
  expect(calls.filter((c) => c.startsWith('probe'))).toHaveLength(2);
  expect(changes).toEqual([true]);
  expect(await shared.roleFor('ns-a')).toBe(SELF_REVOKE_ROLE);
  await shared.stop();
});

test('a change between the two reads starts the wait again', async () => {
  const script = scripted();
  const { state } = script;
  const { shared, changes } = subject(script);
  await shared.check();
  state.binding = served('ValidatingAdmissionPolicyBinding', '2');
  await shared.check();
  expect(changes).toEqual([]);
  await shared.check();
  expect(changes).toEqual([true]);
});

test.each([
  [
    'the binding set to Warn',
    (s: ReturnType<typeof scripted>['state']) => (s.binding!.spec.validationActions = ['Warn']),
  ],
  ['the policy removed', (s: ReturnType<typeof scripted>['state']) => (s.policy = undefined)],
  [
    'the guard unreadable',
    (s: ReturnType<typeof scripted>['state']) => (s.readError = Object.assign(new Error('x'), { code: 403 })),
  ],
])('%s: the pair again at once, and the shared Role deleted', async (_, weaken) => {
  const script = scripted();
  const { state, calls } = script;
  const { shared, changes } = subject(script);
  await shared.check();
  await shared.check();
  await shared.roleFor('ns-a');
  expect(state.roleExists).toBe(true);
  weaken(state);
  await shared.check();
  expect(changes).toEqual([true, false]);
  expect(await shared.roleFor('ns-a')).toBeUndefined();
  expect(state.roleExists).toBe(false);
  expect(calls.at(-1)).toBe(`delete Role ns-a/${SELF_REVOKE_ROLE}`);
  await shared.stop();
});

test('a broker that starts without a verified guard deletes a shared Role an earlier run left', async () => {
  const script = scripted();
  const { state } = script;
  state.roleExists = true;
  state.policy = undefined;
  const { shared, changes } = subject(script);
  await shared.check();
  expect(state.roleExists).toBe(false);
  expect(changes).toEqual([]);
});
