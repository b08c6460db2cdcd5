// Deleting a grant and finding one by id. Used by revocation, the reaper and creation rollback.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import type { K8sClients } from './clients.js';
import { deleteIgnoringNotFound, isNotFound } from './errors.js';
import { GRANT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, revokeObjectName } from '../naming.js';

export interface DeletedGrant {
  /** Whether the ServiceAccount (the grant's root) was still there. */
  serviceAccount: 'deleted' | 'absent';
}

/**
 * Deletes a grant's objects: the access RoleBinding first (authorization is gone as soon as the
 * apiserver's RBAC informer sees it), then the per-grant Roles and the self-revoke binding, then
 * the ServiceAccount (its tokens fail authentication within the apiserver's ~10 s token cache).
 * NotFound counts as success, so this is safe to repeat.
 */
export async function deleteGrantObjects(
  k8s: K8sClients,
  namespace: string,
  grantId: string,
  options: { uid?: string } = {},
): Promise<DeletedGrant> {
  const revokeName = revokeObjectName(grantId);
  await deleteIgnoringNotFound(() => k8s.rbac.deleteNamespacedRoleBinding({ name: grantId, namespace }));
  await Promise.all([
    deleteIgnoringNotFound(() => k8s.rbac.deleteNamespacedRole({ name: grantId, namespace })),
    deleteIgnoringNotFound(() => k8s.rbac.deleteNamespacedRoleBinding({ name: revokeName, namespace })),
    deleteIgnoringNotFound(() => k8s.rbac.deleteNamespacedRole({ name: revokeName, namespace })),
  ]);
  const serviceAccount = await deleteIgnoringNotFound(() =>
    k8s.core.deleteNamespacedServiceAccount({
      name: grantId,
      namespace,
      // The uid precondition keeps us from deleting a same-named successor.
      body: options.uid
        ? { preconditions: { uid: options.uid }, propagationPolicy: 'Background' }
        : undefined,
    }),
  );
  return { serviceAccount };
}

/** True when a ServiceAccount is one of this broker's grant roots for `grantId`. */
export function isOurGrant(sa: V1ServiceAccount, grantId: string): boolean {
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
): Promise<{ namespace: string; serviceAccount: V1ServiceAccount } | undefined> {
  const found = await Promise.all(
    namespaces.map(async (namespace) => {
      try {
        const sa = await k8s.core.readNamespacedServiceAccount({ name: grantId, namespace });
        return isOurGrant(sa, grantId) ? { namespace, serviceAccount: sa } : undefined;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }),
  );
  return found.find((f) => f !== undefined);
}
