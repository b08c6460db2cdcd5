// A scripted cluster for unit tests: the client-node methods a test scripts, and the broker's hot
// path (src/broker/kube/hot-path-api.ts) calling those same methods, as it does for a cluster the
// lean client cannot reach.
import type { K8sClients } from '../../src/broker/kube/clients.js';
import { clientNodeHotPath } from '../../src/broker/kube/hot-path-api.js';

/** `apis`: `{ core, rbac, authn, coordination }` with only the methods the test needs. */
export function scriptedClients(apis: object): K8sClients {
  const k8s = apis as K8sClients;
  return { ...k8s, hotPath: clientNodeHotPath(k8s) };
}
