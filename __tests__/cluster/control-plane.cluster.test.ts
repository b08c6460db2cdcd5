// The foundation every other test relies on: the local control plane is a real kube-apiserver with
// RBAC, TokenRequest, an audit log carrying credential ids, and a garbage collector.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { decodeJwt } from 'jose';
import {
  adminKubeconfigPath,
  coreApi,
  freshNamespace,
  kubectl,
  kubectlStatus,
  rbacApi,
  readAudit,
  tokenKubeconfig,
  uniqueName,
  waitFor,
} from '../../test/support/cluster.js';

let ns: { name: string; remove: () => Promise<void> };
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  ns = await freshNamespace('foundation');
});
afterAll(async () => {
  cleanups.forEach((c) => c());
  await ns.remove();
});

async function serviceAccountToken(name: string): Promise<string> {
  await coreApi().createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  const tr = await coreApi().createNamespacedServiceAccountToken({
    name,
    namespace: ns.name,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  return tr.status!.token!;
}

function kubeconfigFor(token: string): string {
  const kc = tokenKubeconfig(token, ns.name);
  cleanups.push(kc.cleanup);
  return kc.path;
}

describe('local control plane', () => {
  test('the installed kubectl sees /readyz answer ok', () => {
    const r = kubectl(adminKubeconfigPath(), ['get', '--raw', '/readyz']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
  });

  test('cluster:up is idempotent: a second run reuses the running control plane and does not rebuild', () => {
    const r = spawnSync('node', ['scripts/cluster.mjs', 'up'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/reusing the running control plane/);
    expect(r.stderr).not.toMatch(/building|starting/);
    const lines = r.stdout.trim().split('\n');
    expect(lines[lines.length - 1]).toBe(`KUBECONFIG=${adminKubeconfigPath()}`);
    expect(isAbsolute(adminKubeconfigPath())).toBe(true);
  });

  test('RBAC is enforced: denied, allowed after a RoleBinding, denied again after its deletion', async () => {
    const sa = uniqueName('rbac');
    const kc = kubeconfigFor(await serviceAccountToken(sa));
    expect(kubectlStatus(kc, ['get', 'pods'])).toMatchObject({ ok: false, status: 403 });

    await rbacApi().createNamespacedRole({
      namespace: ns.name,
      body: { metadata: { name: sa }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] },
    });
    await rbacApi().createNamespacedRoleBinding({
      namespace: ns.name,
      body: {
        metadata: { name: sa },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
        subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns.name }],
      },
    });
    await waitFor('list pods to be allowed', () =>
      kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined,
    );

    const started = Date.now();
    await rbacApi().deleteNamespacedRoleBinding({ name: sa, namespace: ns.name });
    const denied = await waitFor('list pods to be denied', () => {
      const r = kubectlStatus(kc, ['get', 'pods']);
      return r.ok ? undefined : r;
    });
    console.log(`RBAC denial after RoleBinding deletion: ${Date.now() - started} ms`);
    expect(denied.status).toBe(403);
  });

  test('a TokenRequest token authenticates as the ServiceAccount and is rejected after the SA is deleted', async () => {
    const sa = uniqueName('tokreq');
    const token = await serviceAccountToken(sa);
    const kc = kubeconfigFor(token);
    const whoami = kubectl(kc, ['auth', 'whoami', '-o', 'json']);
    expect(whoami.status).toBe(0);
    const review = JSON.parse(whoami.stdout) as {
      status: { userInfo: { username: string; extra?: Record<string, string[]> } };
    };
    expect(review.status.userInfo.username).toBe(`system:serviceaccount:${ns.name}:${sa}`);

    const credentialId = `JTI=${decodeJwt(token).jti as string}`;
    expect(review.status.userInfo.extra?.['authentication.kubernetes.io/credential-id']).toEqual([
      credentialId,
    ]);

    const started = Date.now();
    await coreApi().deleteNamespacedServiceAccount({ name: sa, namespace: ns.name });
    const rejected = await waitFor(
      'the token to be rejected',
      () => {
        const r = kubectlStatus(kc, ['auth', 'whoami']);
        return r.status === 401 ? r : undefined;
      },
      30_000,
      250,
    );
    console.log(`token rejected (401) after ServiceAccount deletion: ${Date.now() - started} ms`);
    expect(rejected.ok).toBe(false);

    // The audit log records requests made with the token under its credential id.
    const events = await waitFor('audit events for the token', () => {
      const found = readAudit().filter(
        (e) => e.user.extra?.['authentication.kubernetes.io/credential-id']?.[0] === credentialId,
      );
      return found.length > 0 ? found : undefined;
    });
    expect(events[0]!.user.username).toBe(`system:serviceaccount:${ns.name}:${sa}`);
  });

  test('objects owned by a ServiceAccount are garbage-collected after it is deleted', async () => {
    const sa = uniqueName('owner');
    const owner = await coreApi().createNamespacedServiceAccount({
      namespace: ns.name,
      body: { metadata: { name: sa } },
    });
    const child = uniqueName('owned');
    await coreApi().createNamespacedConfigMap({
      namespace: ns.name,
      body: {
        metadata: {
          name: child,
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ServiceAccount', name: sa, uid: owner.metadata!.uid! },
          ],
        },
        data: { k: 'v' },
      },
    });
    await coreApi().deleteNamespacedServiceAccount({ name: sa, namespace: ns.name });
    const started = Date.now();
    await waitFor(
      'the owned ConfigMap to be collected',
      () =>
        coreApi()
          .readNamespacedConfigMap({ name: child, namespace: ns.name })
          .then(() => undefined)
          .catch((e: { code?: number }) => (e.code === 404 ? true : undefined)),
      60_000,
      250,
    );
    console.log(`garbage collection of the owned ConfigMap: ${Date.now() - started} ms`);
  });
});
