// The rules of a grant's role as the API server applies them: its RoleBinding (named after the
// grant) points at a Role or ClusterRole; read both. Read when the grant ends, only when there is
// usage to report, and never in the way of the revocation: any failure means "unknown".
import type { RuleSummary } from '../../shared/api.js';
import type { K8sClients } from '../kube/clients.js';

export async function readGrantRules(
  k8s: Pick<K8sClients, 'rbac'>,
  namespace: string,
  grantId: string,
): Promise<RuleSummary[] | undefined> {
  try {
    const binding = await k8s.rbac.readNamespacedRoleBinding({ name: grantId, namespace });
    const { kind, name } = binding.roleRef;
    const role =
      kind === 'ClusterRole'
        ? await k8s.rbac.readClusterRole({ name })
        : await k8s.rbac.readNamespacedRole({ name, namespace });
    return (role.rules ?? []).map((r) => ({
      apiGroups: r.apiGroups ?? [],
      resources: r.resources ?? [],
      verbs: r.verbs,
      ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
    }));
  } catch {
    return undefined;
  }
}
