// Proof that the API server enforces the self-revoke guard, not merely stores it. The guard's
// objects can read exactly as shipped while nothing enforces them: an API server (one of several,
// say) running without the ValidatingAdmissionPolicy admission plugin stores and serves them all the
// same. So before grants bind the shared self-revoke Role, the broker makes a canary: a
// ServiceAccount named like a grant (what the guard matches), bound to the shared Role by a
// RoleBinding that is not one of its own, and asks, as the canary, to delete that RoleBinding in a
// server-side dry run. RBAC allows it (the shared Role); only the guard refuses it. Any other
// answer means grants would not be narrowed.
//
// The canary's token lives in this function only. Its objects are deleted when it is done; the
// RoleBinding is owned by the ServiceAccount, and every probe first deletes the canaries an earlier
// one left (a broker killed mid-probe), found by their label.
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { rbacApiAs, type K8sClients } from '../kube/clients.js';
import { deleteIgnoringNotFound, describeK8sError, statusCodeOf } from '../kube/errors.js';
import {
  GRANT_ID_PREFIX,
  PART_LABEL,
  SELF_REVOKE_GUARD,
  SELF_REVOKE_PROBE_PART,
  SELF_REVOKE_ROLE,
} from '../naming.js';

/** How long RBAC may refuse the canary: the authorizer sees a new RoleBinding a moment after it is stored. */
export const PROBE_RBAC_SETTLE_MS = 5_000;
const PROBE_RETRY_PAUSE_MS = 100;
/** The shortest token the API server issues. */
const CANARY_TOKEN_SECONDS = 600;

// Not the managed-by label: the reaper and the gateway's grant table take no notice of a canary.
const LABELS = { [PART_LABEL]: SELF_REVOKE_PROBE_PART };
const bindingNameOf = (canary: string) => `${canary}-probe`;

export interface GuardProbe {
  /** What stands in the way of the shared Role in `namespace`; [] when the guard refused the canary. */
  (namespace: string): Promise<string[]>;
}

export interface GuardProbeDeps {
  k8s: Pick<K8sClients, 'hotPath'>;
  /** The broker's kubeconfig: the canary calls the same API server with its own token. */
  kc: KubeConfig;
  /** The canary's deletion as that identity (tests script it); by default over rbacApiAs. */
  deleteAs?: (token: string, namespace: string, name: string) => Promise<unknown>;
  rbacSettleMs?: number;
}

export function guardProbe(deps: GuardProbeDeps): GuardProbe {
  const deleteAs =
    deps.deleteAs ??
    ((token: string, namespace: string, name: string) =>
      rbacApiAs(deps.kc, token).deleteNamespacedRoleBinding({ name, namespace, dryRun: 'All' }));
  return async (namespace) => {
    const { hotPath } = deps.k8s;
    await sweepCanaries(deps.k8s, namespace);
    const canary = GRANT_ID_PREFIX + randomBytes(16).toString('hex');
    try {
      const sa = await hotPath.createNamespacedServiceAccount({
        namespace,
        body: { metadata: { name: canary, labels: LABELS } },
      });
      await hotPath.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: {
            name: bindingNameOf(canary),
            labels: LABELS,
            ownerReferences: [
              { apiVersion: 'v1', kind: 'ServiceAccount', name: canary, uid: sa.metadata?.uid ?? '' },
            ],
          },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: SELF_REVOKE_ROLE },
          subjects: [{ kind: 'ServiceAccount', name: canary, namespace }],
        },
      });
      const issued = await hotPath.createNamespacedServiceAccountToken({
        name: canary,
        namespace,
        body: { spec: { audiences: [], expirationSeconds: CANARY_TOKEN_SECONDS } },
      });
      const token = issued.status?.token;
      if (!token) return ['the probe got no token for its canary ServiceAccount'];
      return await askAsCanary(
        () => deleteAs(token, namespace, bindingNameOf(canary)),
        deps.rbacSettleMs ?? PROBE_RBAC_SETTLE_MS,
      );
    } catch (err) {
      return [`the probe could not make its canary in namespace ${namespace}: ${describeK8sError(err)}`];
    } finally {
      await deleteCanary(deps.k8s, namespace, canary).catch(() => undefined);
    }
  };
}

/** The canary's dry-run deletion, asked again while RBAC has not yet seen its binding. */
async function askAsCanary(ask: () => Promise<unknown>, settleMs: number): Promise<string[]> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    const outcome = await ask().then(
      () => 'allowed' as const,
      (err: unknown) => err,
    );
    if (outcome === 'allowed')
      return [
        'a grant identity was allowed to delete a RoleBinding not its own (a server-side dry run): the ' +
          'API server does not enforce the guard (is its ValidatingAdmissionPolicy admission plugin off?)',
      ];
    const refusal = describeK8sError(outcome);
    if (statusCodeOf(outcome) === 403 && refusal.includes(`'${SELF_REVOKE_GUARD}'`)) return [];
    // RBAC's refusal names the identity and verb, not a policy; it passes once the binding is seen.
    if (statusCodeOf(outcome) !== 403 || Date.now() > deadline)
      return [`the probe's canary was not refused by the guard: ${refusal}`];
    await new Promise((r) => setTimeout(r, PROBE_RETRY_PAUSE_MS));
  }
}

async function deleteCanary(k8s: Pick<K8sClients, 'hotPath'>, namespace: string, canary: string) {
  await deleteIgnoringNotFound(() =>
    k8s.hotPath.deleteNamespacedRoleBinding({ name: bindingNameOf(canary), namespace }),
  );
  await deleteIgnoringNotFound(() => k8s.hotPath.deleteNamespacedServiceAccount({ name: canary, namespace }));
}

/** Deletes what earlier probes left in `namespace` (a broker killed between making and deleting). */
async function sweepCanaries(k8s: Pick<K8sClients, 'hotPath'>, namespace: string): Promise<void> {
  const page = await k8s.hotPath.listNamespacedServiceAccount({
    namespace,
    labelSelector: `${PART_LABEL}=${SELF_REVOKE_PROBE_PART}`,
    limit: 100,
  });
  for (const sa of page.items) {
    const name = sa.metadata?.name;
    if (name) await deleteCanary(k8s, namespace, name);
  }
}
