// `rbac check`: the cluster's RBAC for the broker against what the policy needs (broker-rbac.ts).
// Roles are compared permission by permission (one apiGroup, resource, verb and name at a time), so
// a rule split or merged differently is no drift, while a verb, name or namespace more or less is.
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
} from '@kubernetes/client-node';
import type { K8sClients } from '../kube/clients.js';
import { readIgnoringNotFound } from '../kube/errors.js';
import type { BrokerIdentity, RbacObject } from './broker-rbac.js';

export interface Drift {
  kind: 'missing' | 'extra';
  /** e.g. `Role staging/k8s-ea-broker`. */
  object: string;
  /** The permission or binding detail; empty when the whole object is missing. */
  detail: string;
}

const ANY = '*';

interface Permission {
  group: string;
  resource: string;
  verb: string;
  /** `*` when the rule names no resourceNames (every name). */
  name: string;
}

function permissionsOf(rules: readonly V1PolicyRule[]): Permission[] {
  return rules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((resource) =>
        rule.verbs.flatMap((verb) =>
          (rule.resourceNames?.length ? rule.resourceNames : [ANY]).map((name) => ({
            group,
            resource,
            verb,
            name,
          })),
        ),
      ),
    ),
  );
}

const covers = (held: Permission, wanted: Permission): boolean =>
  (held.group === ANY || held.group === wanted.group) &&
  (held.resource === ANY || held.resource === wanted.resource) &&
  (held.verb === ANY || held.verb === wanted.verb) &&
  (held.name === ANY || held.name === wanted.name);

const samePermission = (a: Permission, b: Permission) =>
  a.group === b.group && a.resource === b.resource && a.verb === b.verb && a.name === b.name;

export function describePermission(p: Permission): string {
  const resource = p.group ? `${p.resource}.${p.group}` : p.resource;
  return `${p.verb} ${resource}${p.name === ANY ? '' : `/${p.name}`}`;
}

const objectName = (o: { kind: string; name: string; namespace?: string }) =>
  `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;

/** Missing and extra permissions of one Role or ClusterRole. */
export function compareRules(
  object: string,
  wanted: readonly V1PolicyRule[],
  actual: readonly V1PolicyRule[],
): Drift[] {
  const want = permissionsOf(wanted);
  const have = permissionsOf(actual);
  return [
    ...want
      .filter((w) => !have.some((h) => covers(h, w)))
      .map((p) => ({ kind: 'missing' as const, object, detail: describePermission(p) })),
    ...have
      .filter((h) => !want.some((w) => samePermission(h, w)))
      .map((p) => ({ kind: 'extra' as const, object, detail: describePermission(p) })),
  ];
}

function compareBinding(
  object: string,
  wanted: RbacObject,
  actual: V1RoleBinding | V1ClusterRoleBinding,
): Drift[] {
  const drifts: Drift[] = [];
  const ref = wanted.roleRef!;
  if (actual.roleRef.kind !== ref.kind || actual.roleRef.name !== ref.name)
    drifts.push({
      kind: 'missing',
      object,
      detail: `roleRef ${ref.kind} ${ref.name} (it refers to ${actual.roleRef.kind} ${actual.roleRef.name})`,
    });
  const subjectKey = (s: { kind: string; name: string; namespace?: string }) =>
    `${s.kind} ${s.namespace ?? ''}/${s.name}`;
  const want = new Set((wanted.subjects ?? []).map(subjectKey));
  const have = new Set((actual.subjects ?? []).map(subjectKey));
  for (const s of want) if (!have.has(s)) drifts.push({ kind: 'missing', object, detail: `subject ${s}` });
  for (const s of have) if (!want.has(s)) drifts.push({ kind: 'extra', object, detail: `subject ${s}` });
  return drifts;
}

async function readObject(k8s: Pick<K8sClients, 'rbac'>, o: RbacObject) {
  const ns = o.namespace ?? '';
  return readIgnoringNotFound<V1Role | V1RoleBinding | V1ClusterRole | V1ClusterRoleBinding>(() => {
    switch (o.kind) {
      case 'Role':
        return k8s.rbac.readNamespacedRole({ name: o.name, namespace: ns });
      case 'RoleBinding':
        return k8s.rbac.readNamespacedRoleBinding({ name: o.name, namespace: ns });
      case 'ClusterRole':
        return k8s.rbac.readClusterRole({ name: o.name });
      case 'ClusterRoleBinding':
        return k8s.rbac.readClusterRoleBinding({ name: o.name });
    }
  });
}

/**
 * Every difference between the cluster and `expected`, plus RoleBindings that bind the broker in
 * namespaces the policy does not name (outside its own). Throws when the cluster cannot be read.
 */
export async function findRbacDrift(
  k8s: Pick<K8sClients, 'rbac'>,
  expected: readonly RbacObject[],
  id: BrokerIdentity,
): Promise<Drift[]> {
  const drifts: Drift[] = [];
  for (const o of expected) {
    const name = objectName(o);
    const actual = await readObject(k8s, o);
    if (!actual) drifts.push({ kind: 'missing', object: name, detail: '' });
    else if ('roleRef' in actual) drifts.push(...compareBinding(name, o, actual));
    else
      drifts.push(...compareRules(name, o.rules ?? [], (actual as { rules?: V1PolicyRule[] }).rules ?? []));
  }
  const namespaces = new Set(expected.flatMap((o) => (o.namespace ? [o.namespace] : [])));
  const bindings = await k8s.rbac.listRoleBindingForAllNamespaces();
  for (const b of bindings.items) {
    const ns = b.metadata?.namespace ?? '';
    if (namespaces.has(ns) || ns === id.brokerNamespace) continue;
    const bindsBroker = (b.subjects ?? []).some(
      (s) =>
        s.kind === 'ServiceAccount' && s.name === id.serviceAccount && s.namespace === id.brokerNamespace,
    );
    if (bindsBroker)
      drifts.push({
        kind: 'extra',
        object: objectName({ kind: 'RoleBinding', name: b.metadata?.name ?? '', namespace: ns }),
        detail: 'binds the broker in a namespace the policy does not grant',
      });
  }
  return drifts;
}
