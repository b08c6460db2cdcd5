// ServiceAccount identities for the admission guard's tests, made as an admin would: a grant-shaped
// one (gha-<32 hex>, what the guard checks) and plain ones with the same rights (what it leaves alone),
// each bound to roles and given a short token in its own kubeconfig.
import { randomBytes } from 'node:crypto';
import { coreApi, rbacApi, tokenKubeconfig } from '../../../test/support/cluster.js';

export const grantName = (): string => `gha-${randomBytes(16).toString('hex')}`;

export interface Identities {
  /** A ServiceAccount token bound to these roles in a namespace; returns its kubeconfig's path. */
  make(namespace: string, name: string, roles: [kind: string, name: string][]): Promise<string>;
  /** Removes every kubeconfig made. */
  cleanup(): void;
}

export function identities(): Identities {
  const made: { cleanup: () => void }[] = [];
  return {
    async make(namespace, name, roles) {
      await coreApi().createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
      for (const [kind, role] of roles)
        await rbacApi().createNamespacedRoleBinding({
          namespace,
          body: {
            metadata: { name: `${name}-${role}` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name: role },
            subjects: [{ kind: 'ServiceAccount', name, namespace }],
          },
        });
      const tr = await coreApi().createNamespacedServiceAccountToken({
        name,
        namespace,
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      });
      const kc = tokenKubeconfig(tr.status!.token!, namespace);
      made.push(kc);
      return kc.path;
    },
    cleanup: () => made.splice(0).forEach((k) => k.cleanup()),
  };
}
