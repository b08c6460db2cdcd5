// Grant creation (grants/grants.ts) over the broker's production HTTP stack: its hot path's JSON calls
// over kube/connection.ts, over TLS, to a scripted API server (test/support/scripted-api-server.ts)
// that answers as Kubernetes does, refusals included. What client-node used to do in these tests
// (objects, Dates, thrown errors) now crosses the wire as JSON and status codes, as in production.
// The same grants against the real API server: __tests__/broker/grants/grants.cluster.test.ts.
import { describe, expect, test } from '@jest/globals';
import { createGrant } from '../../../src/broker/grants/grants.js';
import type { Grantable, VerifiedClaims } from '../../../src/broker/types.js';
import { BrokerError } from '../../../src/shared/errors.js';
import { scriptedCallOf } from '../../../test/support/scripted-api-server.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';

const NS = 'team-a';
const claims = (run: number): VerifiedClaims => ({
  iss: 'https://token.actions.githubusercontent.com',
  aud: 'k8s-ephemeral-access',
  jti: `jti-${run}`,
  exp: 0,
  iat: 0,
  repository_id: '123456789',
  repository_owner_id: '987654',
  repository: 'octo-org/octo-repo',
  repository_owner: 'octo-org',
  run_id: String(run),
  run_attempt: '1',
  ref: 'refs/heads/main',
  event_name: 'push',
  workflow: 'deploy',
  sha: 'b'.repeat(40),
  actor: 'octocat',
});
const grantable: Grantable = {
  ruleName: 'deploy',
  namespace: NS,
  role: 'k8s-ea-viewer',
  roleRef: { kind: 'ClusterRole', name: 'k8s-ea-viewer' },
  rules: [],
  ttlSeconds: 300,
};
const refusal = (code: number, message: string) => Object.assign(new Error(message), { code });
const TOKEN_EXPIRY = '2026-06-01T12:10:00Z';
const GRANT_OPTIONS = { ledgerNamespace: 'k8s-ea-system' };

/** A cluster that records every call as `verb kind name`, with the bodies it received. */
function cluster(refuse: { binding?: number; serviceAccount?: number } = {}) {
  const calls: string[] = [];
  const bodies: Record<string, unknown> = {};
  const seen =
    (call: string, answer: (p: { name?: string; body?: unknown }) => unknown) =>
    async (p: { name?: string; body?: { metadata?: { name?: string } } }) => {
      const name = p.name ?? p.body?.metadata?.name;
      calls.push(`${call} ${name}`);
      bodies[`${call} ${name}`] = p.body;
      return answer(p);
    };
  const k8s = scriptedClients({
    core: {
      createNamespacedServiceAccount: seen('create sa', (p) => {
        if (refuse.serviceAccount) throw refusal(refuse.serviceAccount, 'serviceaccounts already exists');
        return { metadata: { ...(p.body as { metadata: object }).metadata, uid: 'uid-sa' } };
      }),
      createNamespacedServiceAccountToken: seen('create token', () => ({
        status: { token: 'header.payload.signature', expirationTimestamp: new Date(TOKEN_EXPIRY) },
      })),
      readNamespacedServiceAccount: seen('read sa', (p) => ({ metadata: { name: p.name, uid: 'uid-old' } })),
      deleteNamespacedServiceAccount: seen('delete sa', () => ({})),
    },
    rbac: {
      createNamespacedRoleBinding: seen('create rb', (p) => {
        if (refuse.binding) throw refusal(refuse.binding, 'rolebindings is forbidden');
        return p.body;
      }),
      createNamespacedRole: seen('create role', (p) => p.body),
      // The root in the way is a grant: its access binding exists (grant-root.ts).
      readNamespacedRoleBinding: seen('read rb', (p) => ({
        metadata: {
          name: p.name,
          ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: p.name, uid: 'uid-old' }],
        },
      })),
      deleteNamespacedRoleBinding: seen('delete rb', () => {
        throw refusal(404, 'not found');
      }),
      deleteNamespacedRole: seen('delete role', () => {
        throw refusal(404, 'not found');
      }),
    },
  });
  return { k8s, calls, bodies };
}

describe('grant creation over the production HTTP stack', () => {
  test('the ServiceAccount, then its RoleBinding and token; the token expiry read from JSON', async () => {
    const { k8s, calls, bodies } = cluster();
    const g = await createGrant(k8s, claims(1), grantable, GRANT_OPTIONS);
    await g.selfRevoke;
    expect(g.serviceAccountUid).toBe('uid-sa');
    expect(g.token).toBe('header.payload.signature');
    // The scripted Date crossed the wire as a string; the broker parsed it back.
    expect(g.tokenExpiresAt.toISOString()).toBe(new Date(TOKEN_EXPIRY).toISOString());
    expect(calls[0]).toBe(`create sa ${g.grantId}`);
    expect(calls.slice(1, 3).sort()).toEqual([`create rb ${g.grantId}`, `create token ${g.grantId}`]);
    // The token is pinned to the ServiceAccount's uid; the binding is owned by it.
    expect(bodies[`create token ${g.grantId}`]).toMatchObject({ metadata: { uid: 'uid-sa' } });
    expect(bodies[`create rb ${g.grantId}`]).toMatchObject({
      metadata: { ownerReferences: [{ kind: 'ServiceAccount', uid: 'uid-sa' }] },
      roleRef: { kind: 'ClusterRole', name: 'k8s-ea-viewer' },
      subjects: [{ kind: 'ServiceAccount', name: g.grantId, namespace: NS }],
    });
  });

  test('a RoleBinding the API server refuses (403) rolls the ServiceAccount back by its uid', async () => {
    const { k8s, calls, bodies } = cluster({ binding: 403 });
    const err = await createGrant(k8s, claims(2), grantable, GRANT_OPTIONS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect(err).toMatchObject({ reason: 'grant_refused_by_cluster' });
    const deleteSa = calls.find((c) => c.startsWith('delete sa'));
    expect(deleteSa).toBeDefined();
    expect(bodies[deleteSa ?? '']).toMatchObject({ preconditions: { uid: 'uid-sa' } });
  });

  test('an AlreadyExists (409) on a ServiceAccount with its binding is a replayed JWT; nothing is created', async () => {
    const { k8s, calls } = cluster({ serviceAccount: 409 });
    const err = await createGrant(k8s, claims(3), grantable, GRANT_OPTIONS).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'jwt_replayed' });
    const verbs = calls.map((c) => c.split(' ').slice(0, 2).join(' '));
    // The two reads go out together: in either order.
    expect([verbs[0], ...verbs.slice(1).sort()]).toEqual(['create sa', 'read rb', 'read sa']);
  });

  test('the scripted server maps each hot-path URL to the client-node method a test scripts', () => {
    expect(scriptedCallOf('POST', '/api/v1/namespaces/a/serviceaccounts/g-1/token')).toEqual({
      api: 'core',
      name: 'createNamespacedServiceAccountToken',
      params: { namespace: 'a', name: 'g-1' },
    });
    expect(
      scriptedCallOf('DELETE', '/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/x'),
    ).toEqual({ api: 'rbac', name: 'deleteNamespacedRoleBinding', params: { namespace: 'a', name: 'x' } });
    expect(scriptedCallOf('GET', '/apis/coordination.k8s.io/v1/namespaces/a/leases')).toMatchObject({
      name: 'listNamespacedLease',
    });
    expect(scriptedCallOf('GET', '/api/v1/namespaces/a/secrets/x')).toBeUndefined();
  });
});
