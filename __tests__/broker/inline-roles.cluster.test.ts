// Inline roles share one Role per namespace and role (src/broker/grants/inline-roles.ts): each grant
// binds it with its own RoleBinding. Against the real API server, with the broker under the deploy/
// RBAC: a grant gets exactly the inline rules; revoking one grant (through the broker, and straight
// at the API server with the grant's own token) leaves the other grants and the shared Role alone;
// a grant can neither edit nor delete the shared Role; the Role is written once, not per exchange,
// and restored when someone deletes or edits it.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ExchangeResponse } from '../../src/shared/api.js';
import { InlineRoles } from '../../src/broker/grants/inline-roles.js';
import { createK8sClients, loadKubeConfig } from '../../src/broker/kube/clients.js';
import { inlineRoleName, revokeObjectName } from '../../src/broker/naming.js';
import { revokeDirect } from '../../src/action/direct-revoke.js';
import {
  clusterEndpoint,
  coreApi,
  kubectlAdmin,
  kubectlStatus,
  rbacApi,
  tokenKubeconfig,
  waitFor,
} from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';

const ROLE = 'sa-reader';
// Permissions the broker itself holds in a job namespace (deploy/job-namespace-rbac.yaml), so it
// may create a Role with them.
const RULES = [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list'] }];

let env: BrokerEnv;
let broker: InProcessBroker;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['inline'],
    policy: { roles: { [ROLE]: { rules: RULES } }, rules: [{ roles: [ROLE], maxTtlSeconds: 900 }] },
    rbac: { inlineRoles: [ROLE] },
  });
  broker = await env.startInProcessBroker({ reaperIntervalSeconds: 1 });
}, 120_000);
afterAll(async () => {
  cleanups.forEach((c) => c());
  await env?.cleanup();
});

async function exchange(ttlSeconds = 600): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: ROLE, ttlSeconds },
  });
  expect(r.status).toBe(200);
  // The self-revoke objects follow the answer; wait for them so snapshots see the whole grant.
  await waitFor('the self-revoke RoleBinding', () =>
    rbacApi()
      .readNamespacedRoleBinding({ name: revokeObjectName(r.body.grantId), namespace: env.ns })
      .then(
        () => true,
        () => undefined,
      ),
  );
  return r.body;
}

function kubeconfigOf(token: string): string {
  const kc = tokenKubeconfig(token, env.ns);
  cleanups.push(kc.cleanup);
  return kc.path;
}

const readShared = () => rbacApi().readNamespacedRole({ name: inlineRoleName(ROLE), namespace: env.ns });

describe('grants of an inline role', () => {
  test('exist before the first grant: one shared Role, managed, owned by no grant, with exactly the rules', async () => {
    const role = await readShared();
    expect(role.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'k8s-ephemeral-access',
      'k8s-ephemeral-access.io/part': 'inline-role',
    });
    expect(role.metadata?.ownerReferences ?? []).toEqual([]);
    expect(role.rules).toEqual(RULES);
  });

  test('bind the shared Role, get exactly its rules, and cannot touch it; the Role is written once', async () => {
    const before = await readShared();
    const [a, b] = [await exchange(), await exchange()];
    for (const g of [a, b]) {
      const rb = await rbacApi().readNamespacedRoleBinding({ name: g.grantId, namespace: env.ns });
      expect(rb.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: inlineRoleName(ROLE),
      });
      expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: g.grantId, namespace: env.ns }]);
      // No Role of its own any more, and its self-revoke Role names only its own objects.
      await expect(
        rbacApi().readNamespacedRole({ name: g.grantId, namespace: env.ns }),
      ).rejects.toMatchObject({
        code: 404,
      });
      const revoke = await rbacApi().readNamespacedRole({
        name: revokeObjectName(g.grantId),
        namespace: env.ns,
      });
      expect(revoke.rules?.map((r) => [r.resources, r.verbs, r.resourceNames])).toEqual([
        [['rolebindings'], ['delete'], [g.grantId]],
        [['serviceaccounts'], ['delete'], [g.grantId]],
      ]);
    }
    const kc = kubeconfigOf(a.token);
    await waitFor('the grant to work', () =>
      kubectlStatus(kc, ['get', 'serviceaccounts']).ok ? true : undefined,
    );
    expect(kubectlStatus(kc, ['get', 'pods'])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['delete', 'serviceaccount', b.grantId])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc, ['delete', 'role', inlineRoleName(ROLE)])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc, ['delete', 'rolebinding', b.grantId])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['label', 'role', inlineRoleName(ROLE), 'x=y'])).toMatchObject({
      ok: false,
      status: 403,
    });
    // Two exchanges later the Role is the very object it was: no per-exchange write.
    const after = await readShared();
    expect(after.metadata?.uid).toBe(before.metadata?.uid);
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    for (const g of [a, b])
      expect((await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token })).status).toBe(
        200,
      );
  });

  test('revoking one grant (broker, then direct) denies it at once and leaves the others and the Role', async () => {
    const [a, b, c] = [await exchange(), await exchange(), await exchange()];
    const [kcA, kcB, kcC] = [kubeconfigOf(a.token), kubeconfigOf(b.token), kubeconfigOf(c.token)];
    for (const kc of [kcA, kcB, kcC])
      await waitFor('the grant to work', () =>
        kubectlStatus(kc, ['get', 'serviceaccounts']).ok ? true : undefined,
      );

    expect((await broker.request('DELETE', `/v1/grants/${a.grantId}`, { token: a.token })).status).toBe(200);
    await waitFor('revoked grant a to be denied', () => {
      const s = kubectlStatus(kcA, ['get', 'serviceaccounts']);
      return !s.ok && [401, 403].includes(s.status ?? 0) ? true : undefined;
    });

    // The post step's fallback when no broker answers: b deletes its own binding and ServiceAccount.
    const { server, caData } = clusterEndpoint();
    await expect(
      revokeDirect({
        server,
        certificateAuthorityData: caData,
        token: b.token,
        namespace: env.ns,
        grantId: b.grantId,
      }),
    ).resolves.toEqual({ roleBinding: 'deleted', serviceAccount: 'deleted' });
    await waitFor('revoked grant b to be denied', () => {
      const s = kubectlStatus(kcB, ['get', 'serviceaccounts']);
      return !s.ok && [401, 403].includes(s.status ?? 0) ? true : undefined;
    });

    expect(kubectlStatus(kcC, ['get', 'serviceaccounts']).ok).toBe(true);
    expect((await readShared()).rules).toEqual(RULES);
    expect((await broker.request('DELETE', `/v1/grants/${c.grantId}`, { token: c.token })).status).toBe(200);
    expect((await readShared()).rules).toEqual(RULES);
  });

  test('the reaper deletes an expired grant and leaves the shared Role', async () => {
    const g = await exchange(60);
    const other = await exchange(600);
    // Expire it early (the annotation may only bring the end forward, grants/grant-proof.ts); this
    // broker's reaper runs every second.
    const past = new Date(Date.now() - 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    kubectlAdmin([
      '-n',
      env.ns,
      'annotate',
      '--overwrite',
      'serviceaccount',
      g.grantId,
      `k8s-ephemeral-access.io/expires-at=${past}`,
    ]);
    await waitFor(
      'the reaper to delete the expired grant',
      () =>
        coreApi()
          .readNamespacedServiceAccount({ name: g.grantId, namespace: env.ns })
          .then(
            (sa) => (sa.metadata?.deletionTimestamp ? true : undefined),
            () => true,
          ),
      20_000,
    );
    expect((await readShared()).rules).toEqual(RULES);
    const kc = kubeconfigOf(other.token);
    expect(kubectlStatus(kc, ['get', 'serviceaccounts']).ok).toBe(true);
    expect(
      (await broker.request('DELETE', `/v1/grants/${other.grantId}`, { token: other.token })).status,
    ).toBe(200);
  });
});

describe('the shared Role is kept equal to the policy', () => {
  test('re-created when deleted, rewritten when edited or when the policy changes', async () => {
    const k8s = createK8sClients(loadKubeConfig(env.rbac.kubeconfigPath));
    const roles = new InlineRoles(k8s);
    const use = { namespace: env.ns, role: ROLE, rules: RULES };
    roles.start(() => [use], 200);
    try {
      await rbacApi().deleteNamespacedRole({ name: inlineRoleName(ROLE), namespace: env.ns });
      await waitFor('the deleted Role to be re-created', () =>
        readShared().then(
          (r) => (JSON.stringify(r.rules) === JSON.stringify(RULES) ? true : undefined),
          () => undefined,
        ),
      );
      const widened = [...RULES, { apiGroups: [''], resources: ['pods'], verbs: ['get'] }];
      await rbacApi().replaceNamespacedRole({
        name: inlineRoleName(ROLE),
        namespace: env.ns,
        body: { ...(await readShared()), rules: widened },
      });
      await waitFor('the edited Role to be rewritten', () =>
        readShared().then((r) => (JSON.stringify(r.rules) === JSON.stringify(RULES) ? true : undefined)),
      );
    } finally {
      await roles.stop();
    }
    // A policy reload with narrower rules: the next grant's ensure() rewrites the Role first.
    const narrower = [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get'] }];
    await roles.ensure({ ...use, rules: narrower });
    expect((await readShared()).rules).toEqual(narrower);
    await roles.ensure(use);
    expect((await readShared()).rules).toEqual(RULES);
  });

  test('rules the broker does not hold are refused by the API server (the escalation check), nothing is written', async () => {
    const k8s = createK8sClients(loadKubeConfig(env.rbac.kubeconfigPath));
    const roles = new InlineRoles(k8s);
    const before = await readShared();
    await expect(
      roles.ensure({
        namespace: env.ns,
        role: ROLE,
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
      }),
    ).rejects.toMatchObject({ code: 403 });
    const after = await readShared();
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(after.rules).toEqual(RULES);
  });
});
