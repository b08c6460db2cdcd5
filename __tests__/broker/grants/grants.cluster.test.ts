// Grant creation, self-revocation, replay and rollback against the real API server, with the
// broker's Kubernetes client running under exactly the RBAC from deploy/ (not as admin).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { decodeJwt } from 'jose';
import { BrokerError } from '../../../src/shared/errors.js';
import { createGrant } from '../../../src/broker/grants/grants.js';
import { deleteGrantObjects, findGrant } from '../../../src/broker/grants/revoke.js';
import { loadKubeConfig, createK8sClients, type K8sClients } from '../../../src/broker/kube/clients.js';
import {
  grantIdFor,
  EXPIRES_AT_ANNOTATION,
  MANAGED_BY_LABEL,
  inlineRoleName,
  revokeObjectName,
} from '../../../src/broker/naming.js';
import type { Grantable, VerifiedClaims } from '../../../src/broker/types.js';
import {
  freshNamespace,
  kubectlStatus,
  tokenKubeconfig,
  waitFor,
  waitForRevocation,
  coreApi,
  rbacApi,
} from '../../../test/support/cluster.js';
import { installBrokerRbac, type BrokerRbac } from '../../../test/support/deploy-rbac.js';
import { managedObjects } from '../../../test/support/managed-objects.js';

let ns: { name: string; remove: () => Promise<void> };
let other: { name: string; remove: () => Promise<void> };
let rbac: BrokerRbac;
let k8s: K8sClients;
/** No JWT to spend: these tests create grants directly, under the broker's RBAC. */
let GRANT_OPTIONS: { ledgerNamespace: string };
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  ns = await freshNamespace('grants');
  other = await freshNamespace('grants-other');
  rbac = await installBrokerRbac([ns.name]);
  k8s = createK8sClients(loadKubeConfig(rbac.kubeconfigPath));
  GRANT_OPTIONS = { ledgerNamespace: rbac.brokerNamespace };
});
afterAll(async () => {
  cleanups.forEach((c) => c());
  await rbac?.cleanup();
  await Promise.all([ns?.remove(), other?.remove()]);
});

let seq = 0;
function claims(overrides: Partial<VerifiedClaims> = {}): VerifiedClaims {
  seq += 1;
  return {
    iss: 'https://token.actions.githubusercontent.com',
    aud: 'k8s-ephemeral-access',
    jti: `jti-${Date.now()}-${seq}`,
    exp: 0,
    iat: 0,
    repository_id: '123456789',
    repository_owner_id: '987654',
    repository: 'octo-org/Octo_Repo',
    repository_owner: 'octo-org',
    run_id: String(5_000_000 + seq),
    run_attempt: '1',
    ref: 'refs/heads/main',
    event_name: 'push',
    workflow: 'deploy',
    sha: 'b'.repeat(40),
    actor: 'octocat',
    ...overrides,
  };
}

function grantable(roleRef: Grantable['roleRef'], ttlSeconds = 300): Grantable {
  return { ruleName: 'test-rule', namespace: ns.name, role: roleRef.name, roleRef, rules: [], ttlSeconds };
}

function kubeconfig(token: string): string {
  const kc = tokenKubeconfig(token, ns.name);
  cleanups.push(kc.cleanup);
  return kc.path;
}

describe('grant creation under the deploy/ RBAC', () => {
  test('a ClusterRole grant: owned objects, labels, expiry, a token that can do exactly the role', async () => {
    const c = claims();
    const g = await createGrant(
      k8s,
      c,
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }, 120),
      GRANT_OPTIONS,
    );
    expect(g.grantId).toBe(grantIdFor(c));
    expect(g.tokenExpiresAt.getTime() - Date.now()).toBeGreaterThan(500_000); // TokenRequest minimum 600 s
    expect(g.expiresAt.getTime()).toBeLessThan(g.tokenExpiresAt.getTime());
    expect(g.credentialId).toBe(`JTI=${decodeJwt(g.token).jti as string}`);

    const sa = await coreApi().readNamespacedServiceAccount({ name: g.grantId, namespace: ns.name });
    expect(sa.metadata!.uid).toBe(g.serviceAccountUid);
    expect(sa.metadata!.labels).toMatchObject({
      [MANAGED_BY_LABEL]: 'k8s-ephemeral-access',
      'k8s-ephemeral-access.io/repository-id': '123456789',
    });
    expect(sa.metadata!.annotations!['k8s-ephemeral-access.io/repository']).toBe('octo-org/Octo_Repo');
    expect(Date.parse(sa.metadata!.annotations![EXPIRES_AT_ANNOTATION]!)).toBeCloseTo(
      g.expiresAt.getTime(),
      -4,
    );
    const rb = await rbacApi().readNamespacedRoleBinding({ name: g.grantId, namespace: ns.name });
    expect(rb.roleRef).toMatchObject({ kind: 'ClusterRole', name: 'k8s-ea-viewer' });
    // The self-revoke objects are created after the answer; selfRevoke settles once they exist.
    await g.selfRevoke;
    for (const obj of [
      rb,
      await rbacApi().readNamespacedRoleBinding({ name: revokeObjectName(g.grantId), namespace: ns.name }),
      await rbacApi().readNamespacedRole({ name: revokeObjectName(g.grantId), namespace: ns.name }),
    ])
      expect(obj.metadata!.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'ServiceAccount', name: g.grantId, uid: g.serviceAccountUid }),
      ]);

    const kc = kubeconfig(g.token);
    await waitFor('the grant to allow listing pods', () =>
      kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined,
    );
    expect(kubectlStatus(kc, ['get', 'configmaps']).ok).toBe(true);
    expect(kubectlStatus(kc, ['get', 'secrets'])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['create', 'configmap', 'x', '--from-literal=a=b'])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc, ['-n', other.name, 'get', 'pods'])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['get', 'namespaces'])).toMatchObject({ ok: false, status: 403 });
    await deleteGrantObjects(k8s, ns.name, g.grantId);
  });

  test('the grant token can revoke exactly its own grant and nothing else', async () => {
    const a = await createGrant(
      k8s,
      claims(),
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }),
      GRANT_OPTIONS,
    );
    const b = await createGrant(
      k8s,
      claims(),
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }),
      GRANT_OPTIONS,
    );
    await Promise.all([a.selfRevoke, b.selfRevoke]);
    const kc = kubeconfig(a.token);
    await waitFor('the grant to work', () => (kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined));
    // Another grant's objects: denied.
    expect(kubectlStatus(kc, ['delete', 'rolebinding', b.grantId])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['delete', 'serviceaccount', b.grantId])).toMatchObject({
      ok: false,
      status: 403,
    });
    // Cannot widen its own access or keep the self-revoke binding from going away by GC.
    expect(kubectlStatus(kc, ['delete', 'role', revokeObjectName(a.grantId)])).toMatchObject({
      ok: false,
      status: 403,
    });
    // Its own: allowed, RoleBinding first.
    expect(kubectlStatus(kc, ['delete', 'rolebinding', a.grantId, '--wait=false'])).toMatchObject({
      ok: true,
    });
    expect(kubectlStatus(kc, ['delete', 'serviceaccount', a.grantId, '--wait=false'])).toMatchObject({
      ok: true,
    });
    await waitFor('garbage collection of the self-revoke objects', async () =>
      managedObjects([ns.name]).some((o) => o.includes(a.grantId)) ? undefined : true,
    );
    expect(managedObjects([ns.name]).filter((o) => o.includes(b.grantId))).toHaveLength(4);
    await deleteGrantObjects(k8s, ns.name, b.grantId);
  });

  test('replaying the same claims (same JWT) yields jwt_replayed and no second credential', async () => {
    const c = claims();
    const g = await createGrant(
      k8s,
      c,
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }),
      GRANT_OPTIONS,
    );
    const err = await createGrant(
      k8s,
      c,
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }),
      GRANT_OPTIONS,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect(err).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
    // The first grant is intact: the replay neither replaced nor rolled it back.
    await g.selfRevoke;
    expect(managedObjects([ns.name]).filter((o) => o.includes(g.grantId))).toHaveLength(4);
    await deleteGrantObjects(k8s, ns.name, g.grantId);
  });

  test('a RoleBinding the broker may not create (bind on cluster-admin) rolls the whole grant back', async () => {
    const before = managedObjects([ns.name]);
    const c = claims();
    const err = await createGrant(
      k8s,
      c,
      grantable({ kind: 'ClusterRole', name: 'cluster-admin' }),
      GRANT_OPTIONS,
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_INTERNAL', reason: 'grant_refused_by_cluster' });
    expect((err as Error).message).toMatch(/403|forbidden/i);
    expect(managedObjects([ns.name])).toEqual(before);
    await expect(findGrant(k8s, [ns.name], grantIdFor(c))).resolves.toBeUndefined();
  });

  test('an inline Role needs the broker to hold its permissions: refused rules roll back, held rules work', async () => {
    const before = managedObjects([ns.name]);
    const refused = await createGrant(
      k8s,
      claims(),
      grantable({
        kind: 'Inline',
        name: 'read-configmaps',
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
      }),
      GRANT_OPTIONS,
    ).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_INTERNAL', reason: 'grant_refused_by_cluster' });
    expect(managedObjects([ns.name])).toEqual(before);

    const g = await createGrant(
      k8s,
      claims(),
      grantable({
        kind: 'Inline',
        name: 'list-sa',
        rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list'] }],
      }),
      GRANT_OPTIONS,
    );
    await g.selfRevoke;
    const kc = kubeconfig(g.token);
    await waitFor('the inline role to work', () =>
      kubectlStatus(kc, ['get', 'serviceaccounts']).ok ? true : undefined,
    );
    expect(kubectlStatus(kc, ['get', 'pods'])).toMatchObject({ ok: false, status: 403 });
    // The grant binds the Role its inline role shares in the namespace, which no grant owns.
    expect(managedObjects([ns.name]).filter((o) => o.includes(g.grantId))).toEqual(
      [
        `${ns.name}/RoleBinding/${g.grantId}`,
        `${ns.name}/RoleBinding/${revokeObjectName(g.grantId)}`,
        `${ns.name}/Role/${revokeObjectName(g.grantId)}`,
        `${ns.name}/ServiceAccount/${g.grantId}`,
      ].sort(),
    );
    const binding = await rbacApi().readNamespacedRoleBinding({ name: g.grantId, namespace: ns.name });
    expect(binding.roleRef).toMatchObject({ kind: 'Role', name: inlineRoleName('list-sa') });
    await deleteGrantObjects(k8s, ns.name, g.grantId);
    expect(managedObjects([ns.name]).filter((o) => o.includes(g.grantId))).toEqual([]);
    expect(managedObjects([ns.name])).toContain(`${ns.name}/Role/${inlineRoleName('list-sa')}`);
  });

  test('deleting a grant: authorization goes first (403), then authentication (401); repeating is harmless', async () => {
    const g = await createGrant(
      k8s,
      claims(),
      grantable({ kind: 'ClusterRole', name: 'k8s-ea-viewer' }),
      GRANT_OPTIONS,
    );
    const kc = kubeconfig(g.token);
    await waitFor('the grant to work', () => (kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined));
    // A revocation waits for the grant's self-revoke objects first, as the broker's does
    // (grant-work.ts), so none is created after the delete.
    await g.selfRevoke;
    const started = Date.now();
    await expect(deleteGrantObjects(k8s, ns.name, g.grantId, { uid: g.serviceAccountUid })).resolves.toEqual({
      serviceAccount: 'deleted',
    });
    expect(managedObjects([ns.name]).filter((o) => o.includes(g.grantId))).toEqual([]);
    const { first, firstMs, unauthorizedMs } = await waitForRevocation(kc, started);
    console.log(`grant delete: first denial (${first}) after ${firstMs} ms, 401 after ${unauthorizedMs} ms`);
    expect([401, 403]).toContain(first);
    await expect(deleteGrantObjects(k8s, ns.name, g.grantId)).resolves.toEqual({ serviceAccount: 'absent' });
  });
});
