// The broker's RBAC that depends on the policy, derived from it: per job namespace a Role and a
// RoleBinding (grant objects, tokens, and `bind` on exactly the named roles granted there), and one
// ClusterRole + ClusterRoleBinding to read and watch the named ClusterRoles. `rbac generate`
// prints it (render-yaml.ts), `rbac check` compares the cluster with it (drift.ts), and
// deploy/job-namespace-rbac.yaml is its output for the example policy.
import { inlineRoleName, SELF_REVOKE_ROLE } from '../naming.js';
import type { RuleSummary } from '../../shared/api.js';
import { DEFAULT_BROKER_NAMESPACE } from '../policy/job-namespaces.js';
import type { Policy } from '../policy/types.js';

export const RBAC_API_VERSION = 'rbac.authorization.k8s.io/v1';
export const RBAC_GROUP = 'rbac.authorization.k8s.io';
export const BROKER_APP_LABEL = { 'app.kubernetes.io/name': 'k8s-ephemeral-access-broker' } as const;

export interface BrokerIdentity {
  /** Where the broker's ServiceAccount lives. */
  brokerNamespace: string;
  serviceAccount: string;
  /** The Roles and RoleBindings' name; the role reader is `<name>-role-reader`. */
  name: string;
}

export const DEFAULT_BROKER_IDENTITY: Readonly<BrokerIdentity> = Object.freeze({
  brokerNamespace: DEFAULT_BROKER_NAMESPACE,
  serviceAccount: 'k8s-ea-broker',
  name: 'k8s-ea-broker',
});

export interface RbacRule extends RuleSummary {
  /** Why the rule is there, printed above it. */
  why?: string;
}

export interface RbacObject {
  kind: 'Role' | 'RoleBinding' | 'ClusterRole' | 'ClusterRoleBinding';
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  rules?: RbacRule[];
  roleRef?: { kind: 'Role' | 'ClusterRole'; name: string };
  subjects?: { kind: 'ServiceAccount'; name: string; namespace: string }[];
}

/** What the broker binds and creates in one namespace under this policy. */
interface NamespaceNeeds {
  clusterRoles: string[];
  roles: string[];
  /** Inline roles granted here, by policy name: the broker creates a Role with these rules per grant. */
  inline: [string, readonly RuleSummary[]][];
}

function needsOf(policy: Policy, namespace: string): NamespaceNeeds {
  const clusterRoles = new Set<string>();
  const roles = new Set<string>();
  const inline = new Map<string, readonly RuleSummary[]>();
  for (const rule of policy.rules) {
    if (!rule.namespaces.includes(namespace)) continue;
    for (const name of rule.roles) {
      const def = policy.roles[name];
      if (def?.kind === 'ClusterRole') clusterRoles.add(def.name);
      else if (def?.kind === 'Role') roles.add(def.name);
      else if (def?.kind === 'Inline') inline.set(name, def.rules);
    }
  }
  return {
    clusterRoles: [...clusterRoles].sort(),
    roles: [...roles].sort(),
    inline: [...inline.entries()].sort(([a], [b]) => a.localeCompare(b)),
  };
}

/** What the broker needs in every job namespace, whatever the policy grants there. */
function grantObjectRules(): RbacRule[] {
  return [
    {
      why: "Grant roots (create cannot be narrowed by resourceNames); watch: the gateway's grant table; update: renewal.",
      apiGroups: [''],
      resources: ['serviceaccounts'],
      verbs: ['create', 'get', 'list', 'watch', 'update', 'delete'],
    },
    {
      why: "Mint the grant's token. Dedicate this namespace to CI grants: this allows a token for any SA here.",
      apiGroups: [''],
      resources: ['serviceaccounts/token'],
      verbs: ['create'],
    },
    {
      why: "The grant's RoleBinding, and the Role of its self-revoke permission (and of inline roles).",
      apiGroups: [RBAC_GROUP],
      resources: ['rolebindings', 'roles'],
      verbs: ['create', 'get', 'list', 'delete'],
    },
    {
      why: 'The shared self-revoke Role, while deploy/self-revoke-guard.yaml enforces: kept as the broker writes it...',
      apiGroups: [RBAC_GROUP],
      resources: ['roles'],
      verbs: ['update'],
      resourceNames: [SELF_REVOKE_ROLE],
    },
    {
      why: "...and bound to each grant without the API server's per-binding escalation check.",
      apiGroups: [RBAC_GROUP],
      resources: ['roles'],
      verbs: ['bind'],
      resourceNames: [SELF_REVOKE_ROLE],
    },
  ];
}

function namespaceRole(namespace: string, needs: NamespaceNeeds, id: BrokerIdentity): RbacObject {
  const rules: RbacRule[] = grantObjectRules();
  // Never an empty resourceNames list: RBAC reads an empty list as "every name".
  if (needs.clusterRoles.length > 0)
    rules.push({
      why: 'Only the ClusterRoles the policy grants in this namespace may be bound to grants here.',
      apiGroups: [RBAC_GROUP],
      resources: ['clusterroles'],
      verbs: ['bind'],
      resourceNames: needs.clusterRoles,
    });
  if (needs.roles.length > 0)
    rules.push(
      {
        why: 'The named Roles the policy grants here may be bound to grants...',
        apiGroups: [RBAC_GROUP],
        resources: ['roles'],
        verbs: ['bind'],
        resourceNames: needs.roles,
      },
      {
        why: '...and are watched, so that one that becomes dangerous is refused (get is above).',
        apiGroups: [RBAC_GROUP],
        resources: ['roles'],
        verbs: ['watch'],
        resourceNames: needs.roles,
      },
    );
  if (needs.inline.length > 0) {
    const shared = needs.inline.map(([roleName]) => inlineRoleName(roleName));
    rules.push(
      {
        why: 'The shared Roles of inline roles: the broker rewrites one that differs from the policy...',
        apiGroups: [RBAC_GROUP],
        resources: ['roles'],
        verbs: ['update'],
        resourceNames: shared,
      },
      {
        why: "...and binds grants to them without the API server's per-binding escalation check.",
        apiGroups: [RBAC_GROUP],
        resources: ['roles'],
        verbs: ['bind'],
        resourceNames: shared,
      },
    );
  }
  for (const [roleName, inlineRules] of needs.inline)
    inlineRules.forEach((rule, i) =>
      rules.push({
        // RBAC escalation prevention: a Role can be created only by someone who holds all of it.
        ...(i === 0
          ? { why: `Inline role "${roleName}": the broker must hold what it puts into its shared Role.` }
          : {}),
        ...rule,
      }),
    );
  return { kind: 'Role', name: id.name, namespace, rules };
}

const subjectOf = (id: BrokerIdentity) => [
  { kind: 'ServiceAccount' as const, name: id.serviceAccount, namespace: id.brokerNamespace },
];

/** Every object, in a stable order: per namespace (sorted) Role then RoleBinding, then the role reader. */
export function brokerRbacFor(policy: Policy, id: BrokerIdentity = DEFAULT_BROKER_IDENTITY): RbacObject[] {
  const objects: RbacObject[] = [];
  for (const namespace of policy.namespaces()) {
    objects.push(namespaceRole(namespace, needsOf(policy, namespace), id));
    objects.push({
      kind: 'RoleBinding',
      name: id.name,
      namespace,
      roleRef: { kind: 'Role', name: id.name },
      subjects: subjectOf(id),
    });
  }
  const clusterRoles = [
    ...new Set(policy.namedRoles().flatMap((r) => (r.kind === 'ClusterRole' ? [r.name] : []))),
  ].sort();
  if (clusterRoles.length > 0) {
    const reader = `${id.name}-role-reader`;
    objects.push({
      kind: 'ClusterRole',
      name: reader,
      rules: [
        {
          why: 'Read and watch the named ClusterRoles the policy grants, and no other (a metadata.name field selector matches resourceNames).',
          apiGroups: [RBAC_GROUP],
          resources: ['clusterroles'],
          verbs: ['get', 'watch'],
          resourceNames: clusterRoles,
        },
      ],
    });
    objects.push({
      kind: 'ClusterRoleBinding',
      name: reader,
      roleRef: { kind: 'ClusterRole', name: reader },
      subjects: subjectOf(id),
    });
  }
  return objects;
}
