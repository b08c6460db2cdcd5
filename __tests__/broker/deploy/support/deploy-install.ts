// deploy/ as an admin installs it with `kubectl apply -k`: its fixed namespace and the broker's own
// cluster-scoped objects, and their removal (the shared ones, the admission guard and the example job
// roles, stay: the global set-up installed them for every file).
import { coreApi, tryKubectlAdmin, waitFor } from '../../../../test/support/cluster.js';

/** The namespace deploy/ installs the broker into. */
export const BROKER_NS = 'k8s-ephemeral-access';

/** deploy/'s cluster-scoped objects that are the broker's own. */
export const BROKER_CLUSTER_OBJECTS = [
  'clusterrolebinding/k8s-ea-broker-tokenreview',
  'clusterrole/k8s-ea-broker-tokenreview',
  'clusterrolebinding/k8s-ea-broker-role-reader',
  'clusterrole/k8s-ea-broker-role-reader',
  'clusterrolebinding/k8s-ea-broker-self-revoke-guard',
  'clusterrole/k8s-ea-broker-self-revoke-guard',
  'validatingadmissionpolicybinding/k8s-ea-self-revoke-guard',
  'validatingadmissionpolicy/k8s-ea-self-revoke-guard',
];

/** Deletes these namespaces and waits until they are gone. */
export async function removeNamespaces(names: string[]): Promise<void> {
  for (const name of names)
    await coreApi()
      .deleteNamespace({ name })
      .catch(() => undefined);
  for (const name of names)
    await waitFor(
      `namespace ${name} gone`,
      () =>
        coreApi()
          .readNamespace({ name })
          .then(
            () => undefined,
            () => true,
          ),
      120_000,
      500,
    );
}

export function removeBrokerClusterObjects(): void {
  for (const o of BROKER_CLUSTER_OBJECTS) tryKubectlAdmin(['delete', o, '--ignore-not-found']);
}
