// The post step's fallback against the REAL API server: the grant's own token deletes its
// RoleBinding and ServiceAccount (RoleBinding first), NotFound counts as success, and a token
// without the self-revoke permission is refused (and reported by status only).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { DirectRevokeError, revokeDirect } from '../../src/action/direct-revoke.js';
import {
  clusterEndpoint,
  coreApi,
  freshNamespace,
  rbacApi,
  readAudit,
  waitFor,
} from '../../test/support/cluster.js';

let ns: { name: string; remove: () => Promise<void> };
let core: CoreV1Api;
let rbac: RbacAuthorizationV1Api;

beforeAll(async () => {
  ns = await freshNamespace('action-direct');
  core = coreApi();
  rbac = rbacApi();
});
afterAll(async () => {
  await ns.remove();
});

/** A grant shaped like the broker's: SA root, a RoleBinding of the same name, a self-revoke Role. */
async function makeGrant(name: string, selfRevoke: boolean): Promise<string> {
  const namespace = ns.name;
  const sa = await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const owner = [{ apiVersion: 'v1', kind: 'ServiceAccount', name, uid: sa.metadata!.uid! }];
  const subjects = [{ kind: 'ServiceAccount', name, namespace }];
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name, ownerReferences: owner },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects,
    },
  });
  if (selfRevoke) {
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: `${name}-revoke`, ownerReferences: owner },
        rules: [
          {
            apiGroups: ['rbac.authorization.k8s.io'],
            resources: ['rolebindings'],
            resourceNames: [name],
            verbs: ['delete'],
          },
          { apiGroups: [''], resources: ['serviceaccounts'], resourceNames: [name], verbs: ['delete'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: `${name}-revoke`, ownerReferences: owner },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-revoke` },
        subjects,
      },
    });
  }
  const tr = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  return tr.status!.token!;
}

const exists = async (what: () => Promise<unknown>) =>
  what().then(
    () => true,
    () => false,
  );

describe('revokeDirect against the real API server', () => {
  test('deletes the RoleBinding, then the ServiceAccount, with the grant token', async () => {
    const name = 'gha-direct-ok';
    const token = await makeGrant(name, true);
    const { server, caData } = clusterEndpoint();
    const result = await revokeDirect({
      server,
      certificateAuthorityData: caData,
      token,
      namespace: ns.name,
      grantId: name,
    });
    expect(result).toEqual({ roleBinding: 'deleted', serviceAccount: 'deleted' });
    expect(await exists(() => rbac.readNamespacedRoleBinding({ name, namespace: ns.name }))).toBe(false);
    expect(await exists(() => core.readNamespacedServiceAccount({ name, namespace: ns.name }))).toBe(false);

    // The audit log shows both deletes made by the grant itself, RoleBinding first.
    const deletes = await waitFor('both deletes in the audit log', () => {
      const ev = readAudit().filter(
        (e) =>
          e.verb === 'delete' &&
          e.stage === 'ResponseComplete' &&
          e.objectRef?.namespace === ns.name &&
          e.objectRef?.name === name &&
          e.user.username === `system:serviceaccount:${ns.name}:${name}`,
      );
      return ev.length >= 2 ? ev : undefined;
    });
    expect(deletes.map((e) => e.objectRef?.resource)).toEqual(['rolebindings', 'serviceaccounts']);
  });

  test('an object that is already gone (NotFound) counts as revoked', async () => {
    const name = 'gha-direct-partial';
    const token = await makeGrant(name, true);
    // Someone (the reaper, a broker revoke that half-finished) already deleted the RoleBinding.
    await rbac.deleteNamespacedRoleBinding({ name, namespace: ns.name });
    const { server, caData } = clusterEndpoint();
    const result = await revokeDirect({
      server,
      certificateAuthorityData: caData,
      token,
      namespace: ns.name,
      grantId: name,
    });
    expect(result).toEqual({ roleBinding: 'already-gone', serviceAccount: 'deleted' });
    expect(await exists(() => core.readNamespacedServiceAccount({ name, namespace: ns.name }))).toBe(false);
  });

  test('a token without the self-revoke permission is refused with the status only', async () => {
    const name = 'gha-direct-denied';
    const token = await makeGrant(name, false);
    const { server, caData } = clusterEndpoint();
    const err = await revokeDirect({
      server,
      certificateAuthorityData: caData,
      token,
      namespace: ns.name,
      grantId: name,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectRevokeError);
    expect((err as Error).message).toBe(
      `delete RoleBinding ${ns.name}/${name}: the API server answered HTTP 403; delete ServiceAccount ${ns.name}/${name}: the API server answered HTTP 403`,
    );
    expect((err as Error).message).not.toContain(token);
    expect(await exists(() => core.readNamespacedServiceAccount({ name, namespace: ns.name }))).toBe(true);
  });

  test('a server that is not there is reported, not hung on', async () => {
    const { caData } = clusterEndpoint();
    const err = await revokeDirect({
      server: 'https://127.0.0.1:1',
      certificateAuthorityData: caData,
      token: 'x',
      namespace: ns.name,
      grantId: 'gha-nowhere',
      timeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectRevokeError);
  });
});
