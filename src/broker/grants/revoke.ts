// Deleting a grant and finding one by id. Used by revocation, the reaper and creation rollback.
import type { K8sClients } from '../kube/clients.js';
import type { KubeObject, ObjectMeta } from '../kube/hot-path-api.js';
import { deleteIgnoringNotFound, readIgnoringNotFound } from '../kube/errors.js';
import {
  GRANT_ID_PREFIX,
  GRANT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  revokeObjectName,
} from '../naming.js';

export interface DeletedGrant {
  /** Whether the ServiceAccount (the grant's root) was still there. */
  serviceAccount: 'deleted' | 'absent';
  /** With `ownedBy` only: objects named after the grant that it does not own, left in place (kind/name). */
  notOwned?: string[];
}

type Dependent = { kind: 'Role' | 'RoleBinding'; name: string };

/**
 * Deletes a grant's objects: the access RoleBinding first (authorization is gone as soon as the
 * apiserver's RBAC informer sees it), then the per-grant Roles and the self-revoke binding, then
 * the ServiceAccount (its tokens fail authentication within the apiserver's ~10 s token cache).
 * NotFound counts as success, so this is safe to repeat.
 *
 * Revocation and rollback call this for a grant they have just proven (by its token, its run, or
 * having created it) and delete by name. The reaper passes `ownedBy` (the ServiceAccount's uid):
 * then a dependent is read first and deleted only if it carries an ownerReference to that uid,
 * with its own uid as precondition, so an object someone else put under the grant's name stays.
 * With `known` (from listDependents), the reads are skipped: an object absent from that listing
 * is not deleted here, and if the grant owns it the garbage collector deletes it with the root.
 */
export async function deleteGrantObjects(
  k8s: K8sClients,
  namespace: string,
  grantId: string,
  options: {
    uid?: string;
    ownedBy?: string;
    known?: KnownDependents;
    /**
     * Gateway mode's revocation: only the access RoleBinding and the ServiceAccount, since its
     * grants have no self-revoke pair (one round trip less); anything an earlier broker made under
     * the grant is owned by the ServiceAccount, and the garbage collector removes it.
     */
    accessOnly?: boolean;
  } = {},
): Promise<DeletedGrant> {
  const revokeName = revokeObjectName(grantId);
  const access: Dependent = { kind: 'RoleBinding', name: grantId };
  const rest: Dependent[] = options.accessOnly
    ? []
    : [
        // Grants of older brokers had a Role of their own for inline rules; today's bind a shared
        // Role (grants/inline-roles.ts), which is named otherwise and never deleted here.
        { kind: 'Role', name: grantId },
        { kind: 'RoleBinding', name: revokeName },
        { kind: 'Role', name: revokeName },
      ];
  const notOwned: string[] = [];
  let remove = (d: Dependent) => deleteIgnoringNotFound(() => deleteDependent(k8s, namespace, d));
  const ownerUid = options.ownedBy;
  if (ownerUid) {
    // All four reads at once: one round trip more than deleting by name, not four.
    const known = options.known;
    const found = new Map(
      await Promise.all(
        [access, ...rest].map(
          async (d) =>
            [d, known ? known.get(dependentKey(d)) : await readDependent(k8s, namespace, d)] as const,
        ),
      ),
    );
    remove = async (d) => {
      const meta = found.get(d);
      if (!meta) return 'absent';
      if (!ownedBy(meta, ownerUid) || !meta.uid) {
        notOwned.push(`${d.kind}/${d.name}`);
        return 'absent';
      }
      const uid = meta.uid;
      return deleteIgnoringNotFound(() => deleteDependent(k8s, namespace, d, uid));
    };
  }
  await remove(access);
  await Promise.all(rest.map(remove));
  const uid = options.uid ?? ownerUid;
  const serviceAccount = await deleteIgnoringNotFound(() => deleteRoot(k8s, namespace, grantId, uid));
  return ownerUid ? { serviceAccount, notOwned } : { serviceAccount };
}

/** Roles and RoleBindings named like a grant's objects, by `kind/name`: what the reaper reads once per pass. */
export type KnownDependents = ReadonlyMap<string, ObjectMeta>;

const dependentKey = (d: Dependent) => `${d.kind}/${d.name}`;

/**
 * Deletes a grant's ServiceAccount; with `uid`, only that very one: the precondition keeps us from
 * deleting a same-named successor (a 409 then).
 */
export const deleteRoot = (k8s: K8sClients, namespace: string, grantId: string, uid?: string) =>
  k8s.hotPath.deleteNamespacedServiceAccount({
    name: grantId,
    namespace,
    body: uid ? { preconditions: { uid }, propagationPolicy: 'Background' } : undefined,
  });

/** Whether the object carries an ownerReference to the grant's ServiceAccount of this uid. */
export const ownedBy = (meta: ObjectMeta, ownerUid: string) =>
  meta.ownerReferences?.some(
    (r) => r.uid === ownerUid && r.kind === 'ServiceAccount' && r.apiVersion === 'v1',
  ) === true;

/**
 * Deletes the grant's two RoleBindings (access and self-revoke) that `known` lists as owned by the
 * grant's ServiceAccount (`ownerUid`), each with its uid as precondition, and drops them from
 * `known`, so that deleteGrantObjects with the same map does not delete them again. Objects not
 * owned stay in `known`, for deleteGrantObjects to report.
 */
export async function deleteOwnedBindings(
  k8s: K8sClients,
  namespace: string,
  grantId: string,
  ownerUid: string,
  known: Map<string, ObjectMeta>,
): Promise<void> {
  await Promise.all(
    [grantId, revokeObjectName(grantId)].map(async (name) => {
      const d: Dependent = { kind: 'RoleBinding', name };
      const meta = known.get(dependentKey(d));
      const uid = meta?.uid;
      if (!meta || !uid || !ownedBy(meta, ownerUid)) return;
      await deleteIgnoringNotFound(() => deleteDependent(k8s, namespace, d, uid));
      known.delete(dependentKey(d));
    }),
  );
}

/**
 * One LIST of Roles and one of RoleBindings in the namespace, instead of four reads per grant;
 * only objects named with the grant prefix are kept.
 */
export async function listDependents(k8s: K8sClients, namespace: string): Promise<KnownDependents> {
  const [roles, bindings] = await Promise.all([
    k8s.rbac.listNamespacedRole({ namespace }),
    k8s.rbac.listNamespacedRoleBinding({ namespace }),
  ]);
  const known = new Map<string, ObjectMeta>();
  for (const [kind, items] of [
    ['Role', roles.items],
    ['RoleBinding', bindings.items],
  ] as const)
    for (const item of items) {
      const meta = item.metadata;
      if (meta?.name?.startsWith(GRANT_ID_PREFIX)) known.set(`${kind}/${meta.name}`, meta);
    }
  return known;
}

async function readDependent(
  k8s: K8sClients,
  namespace: string,
  { kind, name }: Dependent,
): Promise<ObjectMeta | undefined> {
  const obj = await readIgnoringNotFound(() =>
    kind === 'Role'
      ? k8s.hotPath.readNamespacedRole({ name, namespace })
      : k8s.hotPath.readNamespacedRoleBinding({ name, namespace }),
  );
  return obj?.metadata;
}

function deleteDependent(k8s: K8sClients, namespace: string, { kind, name }: Dependent, uid?: string) {
  const body = uid ? { preconditions: { uid } } : undefined;
  return kind === 'Role'
    ? k8s.hotPath.deleteNamespacedRole({ name, namespace, body })
    : k8s.hotPath.deleteNamespacedRoleBinding({ name, namespace, body });
}

/** True when a ServiceAccount is one of this broker's grant roots for `grantId`. */
export function isOurGrant(sa: KubeObject, grantId: string): boolean {
  const labels = sa.metadata?.labels ?? {};
  return (
    sa.metadata?.name === grantId &&
    labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
    labels[GRANT_LABEL] === grantId
  );
}

/** Looks for the grant's ServiceAccount in the managed namespaces (grant ids are unique). */
export async function findGrant(
  k8s: K8sClients,
  namespaces: readonly string[],
  grantId: string,
): Promise<{ namespace: string; serviceAccount: KubeObject } | undefined> {
  const found = await Promise.all(
    namespaces.map(async (namespace) => {
      const sa = await readIgnoringNotFound(() =>
        k8s.hotPath.readNamespacedServiceAccount({ name: grantId, namespace }),
      );
      return sa && isOurGrant(sa, grantId) ? { namespace, serviceAccount: sa } : undefined;
    }),
  );
  return found.find((f) => f !== undefined);
}
