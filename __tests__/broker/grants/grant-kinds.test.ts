// What each kind of grant decides, from its one entry in grant-kinds.ts.
import { describe, expect, test } from '@jest/globals';
import { grantMode, namedRoleOf, roleRefFor, rulesOf } from '../../../src/broker/grants/grant-kinds.js';
import type { RoleRef } from '../../../src/broker/types.js';

const RULES = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }];
const refs: Record<RoleRef['kind'], RoleRef> = {
  ClusterRole: { kind: 'ClusterRole', name: 'view' },
  Role: { kind: 'Role', name: 'reader' },
  Inline: { kind: 'Inline', name: 'read-configmaps', rules: RULES },
};
const ensured: string[] = [];
const inlineRoles = {
  ensure: async (use: { namespace: string; role: string }) => {
    ensured.push(`${use.namespace}/${use.role}`);
    return `shared-${use.role}`;
  },
};

describe('role kinds', () => {
  test('the access binding names the role as the policy does, or the shared Role of an inline one', async () => {
    const bound = async (ref: RoleRef) => roleRefFor(ref, { namespace: 'team-a', inlineRoles });
    await expect(bound(refs.ClusterRole)).resolves.toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'view',
    });
    await expect(bound(refs.Role)).resolves.toMatchObject({ kind: 'Role', name: 'reader' });
    expect(ensured).toEqual([]);
    await expect(bound(refs.Inline)).resolves.toMatchObject({ kind: 'Role', name: 'shared-read-configmaps' });
    expect(ensured).toEqual(['team-a/read-configmaps']);
  });

  test('only named roles are vetted against the cluster; the Role of a namespace is read there', () => {
    expect(namedRoleOf({ roleRef: refs.ClusterRole, namespace: 'team-a' })).toEqual({
      kind: 'ClusterRole',
      name: 'view',
    });
    expect(namedRoleOf({ roleRef: refs.Role, namespace: 'team-a' })).toEqual({
      kind: 'Role',
      name: 'reader',
      namespace: 'team-a',
    });
    expect(namedRoleOf({ roleRef: refs.Inline, namespace: 'team-a' })).toBeUndefined();
  });

  test("the job summary: the policy's rules, else an inline role's own, else none", () => {
    const other = [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['list'] }];
    expect(rulesOf({ roleRef: refs.Inline, rules: [] })).toEqual(RULES);
    expect(rulesOf({ roleRef: refs.Inline, rules: other })).toEqual(other);
    expect(rulesOf({ roleRef: refs.ClusterRole, rules: [] })).toEqual([]);
  });
});

describe('modes', () => {
  const grantable = { ttlSeconds: 900, maxSessionSeconds: 3600 };
  test("direct: the API server's token for the ttl, and the self-revoke pair", () => {
    const mode = grantMode(undefined);
    expect(mode).toMatchObject({ name: 'direct', selfRevoke: true });
    expect(mode.audience).toBeUndefined();
    expect(mode.tokenSeconds(grantable)).toBe(900);
  });

  test("gateway: the gateway's token for the whole session, no self-revoke pair", () => {
    const mode = grantMode('https://gateway.example');
    expect(mode).toMatchObject({ name: 'gateway', audience: 'https://gateway.example', selfRevoke: false });
    expect(mode.tokenSeconds(grantable)).toBe(3600);
    expect(mode.tokenSeconds({ ttlSeconds: 900 })).toBe(900);
  });
});
