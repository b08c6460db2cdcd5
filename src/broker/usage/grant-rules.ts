// The rules of a grant's role, for its usage report: an inline role's are in the policy; a named
// Role or ClusterRole is read from the cluster (the broker reads and watches each one it grants,
// deploy/job-namespace-rbac.yaml). Read once, when the grant ends; any failure means "unknown",
// never a failed revocation.
import type { RuleSummary } from '../../shared/api.js';
import type { K8sClients } from '../kube/clients.js';
import type { PolicyEngine } from '../types.js';

export async function readRoleRules(
  k8s: Pick<K8sClients, 'rbac'>,
  policy: Pick<PolicyEngine, 'roleDefinition'>,
  namespace: string,
  role: string | undefined,
): Promise<RuleSummary[] | undefined> {
  const definition = role === undefined ? undefined : policy.roleDefinition?.(role);
  if (!definition) return undefined;
  if (definition.kind === 'Inline') return [...definition.rules];
  try {
    const object =
      definition.kind === 'ClusterRole'
        ? await k8s.rbac.readClusterRole({ name: definition.name })
        : await k8s.rbac.readNamespacedRole({ name: definition.name, namespace });
    return (object.rules ?? []).map((r) => ({
      apiGroups: r.apiGroups ?? [],
      resources: r.resources ?? [],
      verbs: r.verbs,
      ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
    }));
  } catch {
    return undefined;
  }
}
