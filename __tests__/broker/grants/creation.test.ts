// grants.create as one unit over a scripted cluster, reached through the broker's production hot path
// (test/support/scripted-clients.ts): the JWT is spent beside the grant's root (grant-root.ts), the
// other objects follow once both are written, and a failure gives the JWT back, unless the failure
// was itself a replay. One strategy per mode: direct grants get the
// self-revoke pair after the answer, gateway grants a token for the gateway only.
import { describe, expect, test } from '@jest/globals';
import { create } from '../../../src/broker/grants/creation.js';
import { ROOT_ATTEMPTS } from '../../../src/broker/grants/grant-root.js';
import type { GrantDeps } from '../../../src/broker/grants/grant-deps.js';
import { InlineRoles } from '../../../src/broker/grants/inline-roles.js';
import { createGrantWork } from '../../../src/broker/grant-work.js';
import { createLogger } from '../../../src/broker/logger.js';
import { grantIdFor, revokeObjectName } from '../../../src/broker/naming.js';
import type { Grantable, VerifiedClaims } from '../../../src/broker/types.js';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');
const claims = {
  ...defaultClaims(),
  iss: 'https://token.actions.githubusercontent.com',
  aud: 'k8s-ephemeral-access',
  jti: 'jti-1',
  iat: NOW / 1000,
  exp: NOW / 1000 + 300,
} as VerifiedClaims;
const GRANT_ID = grantIdFor(claims);
const grantable: Grantable = {
  ruleName: 'deploy',
  namespace: 'team-a',
  role: 'viewer',
  roleRef: { kind: 'ClusterRole', name: 'view' },
  rules: [],
  ttlSeconds: 900,
  maxSessionSeconds: 3600,
};

const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });

/**
 * A cluster that records each call as `verb kind name` (and the body it carried) and fails the calls
 * named in `fail`, by `verb kind` or by the whole line: with a status code, or one per call in turn
 * (0: answer). The grant's access RoleBinding reads as absent unless `fail` says otherwise; then
 * it is owned by `bindingOwner` (the root in the way reads as uid-in-the-way).
 */
function scriptedCluster(script: Record<string, number | number[]> = {}, bindingOwner = 'uid-in-the-way') {
  const fail: Record<string, number | number[]> = { 'read RoleBinding': 404, ...script };
  const calls: string[] = [];
  const bodies = new Map<string, unknown>();
  const tokenRequests: unknown[] = [];
  const call =
    (what: string, answer: (p: { body?: unknown }) => unknown = () => ({})) =>
    async (p: { name?: string; body?: { metadata?: { name?: string } } }) => {
      const line = `${what} ${p.name ?? p.body?.metadata?.name ?? ''}`;
      calls.push(line);
      bodies.set(line, p.body);
      const planned = fail[line] ?? fail[what];
      const code = Array.isArray(planned) ? planned.shift() : planned;
      if (code) throw apiError(code);
      return answer(p);
    };
  const k8s = scriptedClients({
    coordination: {
      createNamespacedLease: call('create Lease', () => ({ metadata: { uid: 'lease-1' } })),
      deleteNamespacedLease: call('delete Lease'),
    },
    core: {
      createNamespacedServiceAccount: call('create ServiceAccount', () => ({ metadata: { uid: 'uid-1' } })),
      readNamespacedServiceAccount: call('read ServiceAccount', () => ({
        metadata: { uid: 'uid-in-the-way' },
      })),
      deleteNamespacedServiceAccount: call('delete ServiceAccount'),
      createNamespacedServiceAccountToken: call('create TokenRequest', (p) => {
        tokenRequests.push(p.body);
        return { status: { token: 'a.b.c', expirationTimestamp: new Date(NOW + 3600_000) } };
      }),
    },
    rbac: {
      createNamespacedRole: call('create Role'),
      readNamespacedRole: call('read Role'),
      deleteNamespacedRole: call('delete Role'),
      createNamespacedRoleBinding: call('create RoleBinding'),
      // The root in the way's own binding, when the script lets it be found.
      readNamespacedRoleBinding: call('read RoleBinding', () => ({
        metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', uid: bindingOwner }] },
      })),
      deleteNamespacedRoleBinding: call('delete RoleBinding'),
    },
  });
  return { k8s, calls, bodies, tokenRequests };
}

/**
 * The calls in `groups` order, exactly; the calls within a group are concurrent (they reach the
 * scripted server over separate connections), so in any order.
 */
function expectInGroups(calls: string[], groups: string[][]): void {
  let at = 0;
  for (const group of groups) {
    expect(calls.slice(at, at + group.length).sort()).toEqual([...group].sort());
    at += group.length;
  }
  expect(calls).toHaveLength(at);
}

function grantDeps(k8s: GrantDeps['k8s'], gatewayAudience?: string): GrantDeps {
  return {
    k8s,
    policy: {} as GrantDeps['policy'],
    logger: createLogger({ write: () => undefined }),
    replayLedger: { namespace: 'k8s-ea-system', keepAfterExpirySeconds: 90 },
    grantWork: createGrantWork(),
    inlineRoles: new InlineRoles(k8s),
    now: () => NOW,
    gatewayAudience,
  };
}

describe('grants.create', () => {
  test('direct mode: the JWT is spent beside the root, the self-revoke pair follows the answer', async () => {
    const { k8s, calls, tokenRequests } = scriptedCluster();
    const deps = grantDeps(k8s);
    const grant = await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expect(calls.slice(0, 2).sort()).toEqual([
      `create Lease ${GRANT_ID}`,
      `create ServiceAccount ${GRANT_ID}`,
    ]);
    expect(calls.slice(2, 4).sort()).toEqual([
      `create RoleBinding ${GRANT_ID}`,
      `create TokenRequest ${GRANT_ID}`,
    ]);
    expect(calls.slice(4)).toEqual([
      `create Role ${revokeObjectName(GRANT_ID)}`,
      `create RoleBinding ${revokeObjectName(GRANT_ID)}`,
    ]);
    expect(tokenRequests).toEqual([
      { metadata: { uid: 'uid-1' }, spec: { audiences: [], expirationSeconds: 900 } },
    ]);
    expect(grant).toMatchObject({ grantId: GRANT_ID, serviceAccountUid: 'uid-1', token: 'a.b.c' });
    expect(grant.expiresAt).toEqual(new Date(NOW + 900_000));
  });

  test("gateway mode: the token is the gateway's, lives for the session, and no self-revoke pair is made", async () => {
    const { k8s, calls, tokenRequests } = scriptedCluster();
    const deps = grantDeps(k8s, 'https://gateway.example');
    await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expect(calls.filter((c) => c.startsWith('create Role '))).toEqual([]);
    expect(calls).toHaveLength(4);
    expect(tokenRequests).toEqual([
      {
        metadata: { uid: 'uid-1' },
        spec: { audiences: ['https://gateway.example'], expirationSeconds: 3600 },
      },
    ]);
  });

  test('objects that fail are rolled back and the JWT is given back, so a retry may use it', async () => {
    const { k8s, calls, bodies } = scriptedCluster({ 'create RoleBinding': 503 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE', reason: 'cluster_unavailable' });
    expect(calls).toContain(`delete ServiceAccount ${GRANT_ID}`);
    expect(calls).toContain(`delete RoleBinding ${GRANT_ID}`);
    expect(calls.at(-1)).toBe(`delete Lease ${GRANT_ID}`);
    // Only the record this exchange wrote: another replica's, written since, would stay.
    expect(bodies.get(`delete Lease ${GRANT_ID}`)).toEqual({ preconditions: { uid: 'lease-1' } });
  });

  test('a JWT already spent (its record exists): the root made beside it is deleted by its uid', async () => {
    const { k8s, calls, bodies } = scriptedCluster({ 'create Lease': 409 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
    // The record belongs to the first use: it stays.
    expectInGroups(calls, [
      [`create Lease ${GRANT_ID}`, `create ServiceAccount ${GRANT_ID}`],
      [`delete ServiceAccount ${GRANT_ID}`],
    ]);
    expect(bodies.get(`delete ServiceAccount ${GRANT_ID}`)).toMatchObject({
      preconditions: { uid: 'uid-1' },
    });
  });

  test('a record the cluster fails to write: the root is deleted and the exchange answers 503', async () => {
    const { k8s, calls } = scriptedCluster({ 'create Lease': 503 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE', reason: 'cluster_unavailable' });
    expect(calls).toContain(`delete ServiceAccount ${GRANT_ID}`);
    expect(
      calls.filter((c) => c.startsWith('create ') && !c.includes('Lease') && !c.includes('ServiceAccount')),
    ).toEqual([]);
  });

  test.each([
    ['its root is in the way', { 'create Lease': 503, 'create ServiceAccount': 409 }],
    ['its root was created', { 'create Lease': 503 }],
  ])(
    'a record this exchange failed to write is never deleted (%s): it may be the record of a grant another replica made',
    async (_, script) => {
      const { k8s, calls } = scriptedCluster(script);
      const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE' });
      expect(calls.filter((c) => c.includes('Lease'))).toEqual([`create Lease ${GRANT_ID}`]);
    },
  );

  test('a failure before anything is written (the inline role) touches no record', async () => {
    const { k8s, calls } = scriptedCluster({ 'read Role': 503 });
    const inline: Grantable = {
      ...grantable,
      role: 'reader',
      roleRef: {
        kind: 'Inline',
        name: 'reader',
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
      },
    };
    const err = await create(grantDeps(k8s), claims, inline, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE' });
    expect(calls.filter((c) => c.includes('Lease') || c.includes('ServiceAccount'))).toEqual([]);
  });

  test('a root the cluster fails to create gives the JWT back and binds nothing', async () => {
    const { k8s, calls } = scriptedCluster({ 'create ServiceAccount': 503 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAVAILABLE', reason: 'cluster_unavailable' });
    expect(calls.slice(2)).toEqual([`delete Lease ${GRANT_ID}`]);
  });

  test('the record is ours and an unbound root of the same JWT is in the way: it is replaced', async () => {
    // What a replica that lost the record, or a broker killed before its record landed, leaves.
    const { k8s, calls, bodies } = scriptedCluster({ 'create ServiceAccount': [409, 0] });
    const deps = grantDeps(k8s);
    const grant = await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expectInGroups(calls.slice(0, 6), [
      [`create Lease ${GRANT_ID}`, `create ServiceAccount ${GRANT_ID}`],
      [`read ServiceAccount ${GRANT_ID}`, `read RoleBinding ${GRANT_ID}`],
      [`delete ServiceAccount ${GRANT_ID}`],
      [`create ServiceAccount ${GRANT_ID}`],
    ]);
    // Deleted by the uid read: a root put there since is read again, not deleted unseen.
    expect(bodies.get(`delete ServiceAccount ${GRANT_ID}`)).toMatchObject({
      preconditions: { uid: 'uid-in-the-way' },
    });
    expect(grant).toMatchObject({ grantId: GRANT_ID, serviceAccountUid: 'uid-1', token: 'a.b.c' });
  });

  test('the record is ours but the root in the way has its binding (a grant): a replay, the record kept', async () => {
    const { k8s, calls } = scriptedCluster({ 'create ServiceAccount': 409, 'read RoleBinding': 0 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
    expectInGroups(calls, [
      [`create Lease ${GRANT_ID}`, `create ServiceAccount ${GRANT_ID}`],
      [`read ServiceAccount ${GRANT_ID}`, `read RoleBinding ${GRANT_ID}`],
    ]);
  });

  test('a binding under the name that the root in the way does not own does not make it a grant', async () => {
    const { k8s, calls } = scriptedCluster({ 'create ServiceAccount': [409, 0] }, 'someone-else');
    const deps = grantDeps(k8s);
    await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expect(calls.filter((c) => c === `create ServiceAccount ${GRANT_ID}`)).toHaveLength(2);
  });

  test(`a root that is back in the way ${ROOT_ATTEMPTS} times: the exchange gives up and gives the JWT back`, async () => {
    const { k8s, calls } = scriptedCluster({ 'create ServiceAccount': 409 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'grant_refused_by_cluster' });
    expect(calls.filter((c) => c === `create ServiceAccount ${GRANT_ID}`)).toHaveLength(1 + ROOT_ATTEMPTS);
    expect(calls.at(-1)).toBe(`delete Lease ${GRANT_ID}`);
    expect(
      calls.filter((c) => c.startsWith('create RoleBinding') || c.startsWith('create TokenRequest')),
    ).toEqual([]);
  });

  test('a JWT already spent whose root also exists: nothing is created, nothing deleted', async () => {
    const { k8s, calls } = scriptedCluster({ 'create Lease': 409, 'create ServiceAccount': 409 });
    const err = await create(grantDeps(k8s), claims, grantable, 'req-1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'jwt_replayed' });
    expectInGroups(calls, [[`create Lease ${GRANT_ID}`, `create ServiceAccount ${GRANT_ID}`]]);
  });
});

describe('grants.create in direct mode with the shared self-revoke Role (shared-self-revoke.ts)', () => {
  const REVOKE = revokeObjectName(GRANT_ID);
  const withShared = (k8s: GrantDeps['k8s'], role: string | undefined): GrantDeps => ({
    ...grantDeps(k8s),
    sharedSelfRevoke: { roleFor: async () => role },
  });

  test('while the guard is verified: one RoleBinding to the shared Role after the answer, no Role of its own', async () => {
    const { k8s, calls, bodies } = scriptedCluster();
    const deps = withShared(k8s, 'k8s-ea-self-revoke');
    await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expect(calls.slice(4)).toEqual([`create RoleBinding ${REVOKE}`]);
    expect(bodies.get(`create RoleBinding ${REVOKE}`)).toMatchObject({
      metadata: { name: REVOKE, ownerReferences: [{ kind: 'ServiceAccount', name: GRANT_ID, uid: 'uid-1' }] },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'k8s-ea-self-revoke' },
      subjects: [{ kind: 'ServiceAccount', name: GRANT_ID, namespace: 'team-a' }],
    });
  });

  test('while it is not: the per-grant pair, its binding naming its own Role', async () => {
    const { k8s, calls, bodies } = scriptedCluster();
    const deps = withShared(k8s, undefined);
    await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    expect(calls.slice(4)).toEqual([`create Role ${REVOKE}`, `create RoleBinding ${REVOKE}`]);
    expect(bodies.get(`create RoleBinding ${REVOKE}`)).toMatchObject({ roleRef: { name: REVOKE } });
  });

  test('a shared binding the API server refuses (the broker lacks that bind) leaves the grant the pair', async () => {
    const { k8s, calls } = scriptedCluster({ [`create RoleBinding ${REVOKE}`]: 403 });
    const deps = withShared(k8s, 'k8s-ea-self-revoke');
    await create(deps, claims, grantable, 'req-1');
    await deps.grantWork.settled(GRANT_ID);
    // The pair's binding is refused by the same script, so the grant ends without one (logged).
    expect(calls.slice(4)).toEqual([
      `create RoleBinding ${REVOKE}`,
      `create Role ${REVOKE}`,
      `create RoleBinding ${REVOKE}`,
    ]);
  });
});
