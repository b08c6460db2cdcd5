// A scripted cluster for unit tests: the client-node methods a test scripts, and the broker's
// production hot path (src/broker/kube/hot-path-api.ts over kube/connection.ts) reaching those same
// methods through a scripted HTTPS API server (scripted-api-server.ts), as it reaches the real one.
import type { K8sClients } from '../../src/broker/kube/clients.js';
import { scriptedHotPath, type ScriptedApis } from './scripted-api-server.js';

/** `apis`: `{ core, rbac, authn, coordination }` with only the methods the test needs. */
export function scriptedClients(apis: object): K8sClients {
  const k8s = apis as K8sClients;
  return { ...k8s, hotPath: scriptedHotPath(apis as ScriptedApis) };
}
