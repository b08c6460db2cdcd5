// Namespaces a policy may never hand to jobs. A grant's namespace is where the broker creates its
// ServiceAccount, binds its role and (with `rbac generate`) holds token minting itself, so these
// would give jobs, or the broker's own power, a place among the cluster's own objects.

/** Where the broker runs unless its config says otherwise (`brokerNamespace`). */
export const DEFAULT_BROKER_NAMESPACE = 'k8s-ephemeral-access';

/** Kubernetes' own namespaces, and `default`, with why each is refused. */
const RESERVED: Record<string, string> = {
  'kube-system': "holds the control plane's and the cluster add-ons' ServiceAccounts, Secrets and pods",
  'kube-public': 'is readable by everyone, unauthenticated users included',
  'kube-node-lease': "holds the nodes' heartbeat Leases",
  default:
    'holds the API server\'s own "kubernetes" Service and whatever lands there without a namespace; ' +
    'give jobs a namespace of their own',
};

/** Why `namespace` may not be a job namespace, or undefined when it may. */
export function jobNamespaceProblem(namespace: string, brokerNamespace: string): string | undefined {
  const reserved = RESERVED[namespace];
  if (reserved) return `"${namespace}" cannot be a job namespace: it ${reserved}`;
  if (namespace === brokerNamespace)
    return (
      `"${namespace}" is the broker's own namespace (its JWT-use records, its leader Lease and its ` +
      'ServiceAccount): it cannot be a job namespace'
    );
  return undefined;
}
