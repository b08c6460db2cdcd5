// What differs between kinds of grant, each in one place, so a new kind is one entry here plus the
// policy that names it. Two independent choices make a grant's kind:
// - the role it binds (ROLE_KINDS): a named ClusterRole or Role is bound as it is; an inline role
//   first gets the Role it shares in the namespace (inline-roles.ts), which belongs to no grant;
// - the mode the broker runs in (grantMode): in direct mode the job talks to the API server with a
//   token for it, lasting the grant's ttl, and may delete its own grant there (the self-revoke
//   pair). In gateway mode the token is for the gateway's audience alone (the API server refuses
//   it) and lasts until the rule's session limit (the gateway and the reaper end the grant, not the
//   token, so a renewal needs no new token); the job cannot reach the API server, so no self-revoke
//   pair is made (docs/benchmarks.md, "Write budget") and a revocation deletes only the binding
//   and the root.
import type { V1RoleRef } from '@kubernetes/client-node';
import type { RuleSummary } from '../../shared/api.js';
import type { Grantable, RoleRef } from '../types.js';
import { RBAC_GROUP } from './grant-objects.js';
import type { InlineRoles } from './inline-roles.js';

interface RoleKind<K extends RoleRef['kind']> {
  /** The roleRef of the grant's access RoleBinding. */
  roleRef(
    roleRef: Extract<RoleRef, { kind: K }>,
    grant: { namespace: string; inlineRoles: Pick<InlineRoles, 'ensure'> },
  ): Promise<V1RoleRef>;
  /** What the role allows, for the job summary, when the policy could not say (`grantable.rules` empty). */
  rulesWhenUnknown(roleRef: Extract<RoleRef, { kind: K }>): RuleSummary[];
}

const ROLE_KINDS: { [K in RoleRef['kind']]: RoleKind<K> } = {
  ClusterRole: {
    roleRef: async ({ name }) => ({ apiGroup: RBAC_GROUP, kind: 'ClusterRole', name }),
    rulesWhenUnknown: () => [],
  },
  Role: {
    roleRef: async ({ name }) => ({ apiGroup: RBAC_GROUP, kind: 'Role', name }),
    rulesWhenUnknown: () => [],
  },
  Inline: {
    roleRef: async ({ name, rules }, { namespace, inlineRoles }) => ({
      apiGroup: RBAC_GROUP,
      kind: 'Role',
      name: await inlineRoles.ensure({ namespace, role: name, rules }),
    }),
    rulesWhenUnknown: ({ rules }) => rules,
  },
};

const kindOf = (roleRef: RoleRef) => ROLE_KINDS[roleRef.kind] as RoleKind<RoleRef['kind']>;

/**
 * The roleRef of the grant's access RoleBinding. Runs before anything of the grant exists: a Role
 * the broker may not create (it lacks those permissions) leaves nothing to roll back.
 */
export function roleRefFor(
  roleRef: RoleRef,
  grant: { namespace: string; inlineRoles: Pick<InlineRoles, 'ensure'> },
): Promise<V1RoleRef> {
  return kindOf(roleRef).roleRef(roleRef, grant);
}

/** What the grant allows, for the job summary. */
export function rulesOf(grantable: Pick<Grantable, 'roleRef' | 'rules'>): RuleSummary[] {
  return grantable.rules.length > 0
    ? grantable.rules
    : kindOf(grantable.roleRef).rulesWhenUnknown(grantable.roleRef);
}

export interface GrantMode {
  name: 'direct' | 'gateway';
  /** The one audience of the grant's tokens; undefined: the API server's own. */
  audience?: string;
  /** How long the grant's token lives (at least TokenRequest's minimum, grant-objects.ts). */
  tokenSeconds(grantable: Pick<Grantable, 'ttlSeconds' | 'maxSessionSeconds'>): number;
  /** Whether the grant gets the self-revoke Role and RoleBinding (and a revocation deletes them). */
  selfRevoke: boolean;
}

const DIRECT: GrantMode = {
  name: 'direct',
  tokenSeconds: (g) => g.ttlSeconds,
  selfRevoke: true,
};

/** Gateway mode when the broker runs a gateway with this token audience; direct mode otherwise. */
export function grantMode(gatewayAudience: string | undefined): GrantMode {
  if (!gatewayAudience) return DIRECT;
  return {
    name: 'gateway',
    audience: gatewayAudience,
    tokenSeconds: (g) => Math.max(g.ttlSeconds, g.maxSessionSeconds ?? 0),
    selfRevoke: false,
  };
}
