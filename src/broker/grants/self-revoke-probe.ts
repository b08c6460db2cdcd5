// Proof that the API server enforces the self-revoke guard, not merely stores it. The guard's
// objects can read exactly as shipped while nothing enforces them: an API server (one of several,
// say) running without the ValidatingAdmissionPolicy admission plugin stores and serves them all the
// same. So before grants bind the shared self-revoke Role, and every PROBE_RETRY_MS while they do
// (shared-self-revoke.ts), the broker makes a canary: a ServiceAccount named like a grant (what the
// guard matches), with a Role of its own allowing one deletion, of its RoleBinding `<canary>-probe`
// (a name the guard does not count as the grant's own), and asks as the canary for that deletion in a
// server-side dry run. RBAC allows it; only the guard refuses it. Any other answer means grants would
// not be narrowed. The canary's Role is its own, not the shared one, so probing never brings back the
// shared Role's unnarrowed permission for grants still bound to it.
//
// The canary's token lives in this function only. Its objects are deleted when it is done (its Role
// and RoleBinding are also owned by its ServiceAccount), and every probe first deletes the canaries
// an earlier one left (a broker killed mid-probe) once they are older than any probe runs.
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { rbacApiAs, type K8sClients } from '../kube/clients.js';
import { deleteIgnoringNotFound, describeK8sError, statusCodeOf } from '../kube/errors.js';
import type { Logger } from '../logger.js';
import {
  GRANT_ID_PREFIX,
  isGrantId,
  MANAGED_BY_LABEL,
  PART_LABEL,
  SELF_REVOKE_GUARD,
  SELF_REVOKE_PROBE_PART,
} from '../naming.js';

/** How long RBAC may refuse the canary: the authorizer sees a new RoleBinding a moment after it is stored. */
export const PROBE_RBAC_SETTLE_MS = 5_000;
/** A canary older than this is an earlier probe's leftover (a probe takes seconds), not another replica's. */
export const CANARY_LEFTOVER_MS = 120_000;
const PROBE_RETRY_PAUSE_MS = 100;
/** The shortest token the API server issues. */
const CANARY_TOKEN_SECONDS = 600;
/** Leftovers deleted per probe; more wait for the next one. */
const SWEEP_LIMIT = 100;

// Not the managed-by label: the reaper and the gateway's grant table take no notice of a canary.
const LABELS = { [PART_LABEL]: SELF_REVOKE_PROBE_PART };
const bindingNameOf = (canary: string) => `${canary}-probe`;

export interface GuardProbe {
  /** What stands in the way of the shared Role, probed in `namespace`; [] when the guard refused the canary. */
  (namespace: string): Promise<string[]>;
}

export interface GuardProbeDeps {
  k8s: Pick<K8sClients, 'hotPath'>;
  /** The broker's kubeconfig: the canary calls the same API server with its own token. */
  kc: KubeConfig;
  logger?: Logger;
  /** The canary's deletion as that identity (tests script it); by default over rbacApiAs. */
  deleteAs?: (token: string, namespace: string, name: string) => Promise<unknown>;
  rbacSettleMs?: number;
  now?: () => number;
}

export function guardProbe(deps: GuardProbeDeps): GuardProbe {
  const deleteAs =
    deps.deleteAs ??
    ((token: string, namespace: string, name: string) =>
      rbacApiAs(deps.kc, token).deleteNamespacedRoleBinding({ name, namespace, dryRun: 'All' }));
  return async (namespace) => {
    const canary = GRANT_ID_PREFIX + randomBytes(16).toString('hex');
    let canaryMayExist = false;
    try {
      await sweepCanaries(deps, namespace);
      canaryMayExist = true;
      const token = await makeCanary(deps.k8s, namespace, canary);
      if (!token) return ['the probe got no token for its canary ServiceAccount'];
      return await askAsCanary(
        () => deleteAs(token, namespace, bindingNameOf(canary)),
        deps.rbacSettleMs ?? PROBE_RBAC_SETTLE_MS,
      );
    } catch (err) {
      return [`the probe could not make its canary in namespace ${namespace}: ${describeK8sError(err)}`];
    } finally {
      if (canaryMayExist) await deleteCanary(deps, namespace, canary);
    }
  };
}

/** The canary's ServiceAccount, its Role and RoleBinding (owned by the ServiceAccount), and its token. */
async function makeCanary(
  k8s: Pick<K8sClients, 'hotPath'>,
  namespace: string,
  canary: string,
): Promise<string | undefined> {
  const { hotPath } = k8s;
  const sa = await hotPath.createNamespacedServiceAccount({
    namespace,
    body: { metadata: { name: canary, labels: LABELS } },
  });
  const owned = {
    labels: LABELS,
    ownerReferences: [
      { apiVersion: 'v1', kind: 'ServiceAccount', name: canary, uid: sa.metadata?.uid ?? '' },
    ],
  };
  await hotPath.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: canary, ...owned },
      rules: [
        {
          apiGroups: ['rbac.authorization.k8s.io'],
          resources: ['rolebindings'],
          verbs: ['delete'],
          resourceNames: [bindingNameOf(canary)],
        },
      ],
    },
  });
  await hotPath.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: bindingNameOf(canary), ...owned },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: canary },
      subjects: [{ kind: 'ServiceAccount', name: canary, namespace }],
    },
  });
  const issued = await hotPath.createNamespacedServiceAccountToken({
    name: canary,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: CANARY_TOKEN_SECONDS } },
  });
  return issued.status?.token;
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
        'a grant identity was allowed to delete a RoleBinding the guard does not count as its own (a server-side dry run): the API server does not enforce the guard (is its ValidatingAdmissionPolicy admission plugin off?)',
      ];
    const refusal = describeK8sError(outcome);
    // The admission plugin names the policy in single quotes; RBAC's refusal names the user and verb.
    if (statusCodeOf(outcome) === 403 && refusal.includes(`'${SELF_REVOKE_GUARD}'`)) return [];
    if (statusCodeOf(outcome) !== 403 || Date.now() > deadline)
      return [`the probe's canary was not refused by the guard: ${refusal}`];
    await new Promise((r) => setTimeout(r, PROBE_RETRY_PAUSE_MS));
  }
}

/** Deletes the canary's objects, each whatever became of the others; a failure is logged (the sweep retries). */
async function deleteCanary(deps: GuardProbeDeps, namespace: string, canary: string): Promise<void> {
  const { hotPath } = deps.k8s;
  const results = await Promise.allSettled([
    deleteIgnoringNotFound(() => hotPath.deleteNamespacedServiceAccount({ name: canary, namespace })),
    deleteIgnoringNotFound(() =>
      hotPath.deleteNamespacedRoleBinding({ name: bindingNameOf(canary), namespace }),
    ),
    deleteIgnoringNotFound(() => hotPath.deleteNamespacedRole({ name: canary, namespace })),
  ]);
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [describeK8sError(r.reason)] : []));
  if (failed.length > 0)
    deps.logger?.error("cannot delete the self-revoke probe's canary; the next probe retries", {
      namespace,
      canary,
      errors: failed,
    });
}

/**
 * Deletes what earlier probes left in `namespace`: ServiceAccounts with the canary's label and name,
 * not the grants' managed-by label, and older than a probe takes (another replica's may be running).
 */
async function sweepCanaries(deps: GuardProbeDeps, namespace: string): Promise<void> {
  const now = (deps.now ?? Date.now)();
  const page = await deps.k8s.hotPath.listNamespacedServiceAccount({
    namespace,
    labelSelector: `${PART_LABEL}=${SELF_REVOKE_PROBE_PART},!${MANAGED_BY_LABEL}`,
    limit: SWEEP_LIMIT,
  });
  for (const sa of page.items) {
    const name = sa.metadata?.name ?? '';
    const created = new Date(sa.metadata?.creationTimestamp ?? now).getTime();
    if (isGrantId(name) && now - created > CANARY_LEFTOVER_MS) await deleteCanary(deps, namespace, name);
  }
}
