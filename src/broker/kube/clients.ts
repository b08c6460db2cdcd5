// The Kubernetes API clients the broker uses, from a kubeconfig file or the pod's in-cluster identity,
// all over one connection (connection.ts): client-node's API objects for lists, TokenReview and the
// leader lease, the watches, and the hot path's JSON calls.
import { readFileSync } from 'node:fs';
import {
  AdmissionregistrationV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  RbacAuthorizationV1Api,
  ServerConfiguration,
  type Configuration,
  type SecurityAuthentication,
  Watch,
} from '@kubernetes/client-node';
import { K8S_CALL_TIMEOUT_MS, KubeConnection } from './connection.js';
import { clientNodeHotPath, jsonHotPath, type HotPathApi } from './hot-path-api.js';
import { pooledWatcher } from './pooled-watch.js';
import type { Watcher } from './watches.js';

export interface K8sClients {
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  authn: AuthenticationV1Api;
  coordination: CoordinationV1Api;
  /** Reads the self-revoke guard (grants/shared-self-revoke.ts). */
  admission: AdmissionregistrationV1Api;
  /** The exchange's and the revocation's calls, as plain JSON calls where they can reach the cluster. */
  hotPath: HotPathApi;
  /** Opens the watches of the gateway's grant table and of role vetting. */
  watcher: Watcher;
  /** The connection every call above travels over; the gateway's upstream shares its rules. */
  connection: KubeConnection;
}

/** A kubeconfig from `path`, or the in-cluster service account when no path is given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

/**
 * client-node's API object of `type` for the cluster of `kc`, made as KubeConfig.makeApiClient
 * makes it but authenticated by `auth` (the connection's: pooled and bounded like every other call).
 */
function apiClient<T>(
  kc: KubeConfig,
  type: new (configuration: Configuration) => T,
  auth: SecurityAuthentication,
): T {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('No active cluster!');
  return new type(
    createConfiguration({ baseServer: new ServerConfiguration(server, {}), authMethods: { default: auth } }),
  );
}

export function createK8sClients(kc: KubeConfig, connection = new KubeConnection(kc)): K8sClients {
  const apis = {
    core: apiClient(kc, CoreV1Api, connection.clientNodeAuth),
    rbac: apiClient(kc, RbacAuthorizationV1Api, connection.clientNodeAuth),
    authn: apiClient(kc, AuthenticationV1Api, connection.clientNodeAuth),
    coordination: apiClient(kc, CoordinationV1Api, connection.clientNodeAuth),
    admission: apiClient(kc, AdmissionregistrationV1Api, connection.clientNodeAuth),
  };
  // What the connection cannot reach (a proxy, plain HTTP) stays with client-node.
  const pooled = KubeConnection.supports(kc);
  const hotPath = pooled ? jsonHotPath(connection) : clientNodeHotPath(apis);
  const watcher = pooled ? pooledWatcher(connection) : new Watch(kc);
  return { ...apis, hotPath, watcher, connection };
}

/**
 * An RBAC client for the broker's cluster (address, CA, proxy) as another identity, a bearer token:
 * the self-revoke guard's probe asks as a canary grant. Bounded like the broker's own calls; not
 * pooled (it serves one call).
 */
export function rbacApiAs(kc: KubeConfig, token: string): RbacAuthorizationV1Api {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  const as = new KubeConfig();
  as.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'bearer', token }],
    contexts: [{ name: 'bearer', cluster: cluster.name, user: 'bearer' }],
    currentContext: 'bearer',
  });
  return apiClient(as, RbacAuthorizationV1Api, {
    getName: () => 'bearer token, bounded',
    applySecurityAuthentication: async (context) => {
      await as.applySecurityAuthentication(context);
      context.setSignal(AbortSignal.timeout(K8S_CALL_TIMEOUT_MS));
    },
  });
}

/** What a job's kubeconfig needs to reach the API server: its URL and CA (base64 PEM). */
export interface ClusterEndpoint {
  server: string;
  certificateAuthorityData: string;
}

/** The endpoint handed to jobs; the config may override both (the broker may reach the API another way). */
export function clusterEndpointOf(
  kc: KubeConfig,
  overrides: { clusterServer?: string; clusterCaFile?: string } = {},
): ClusterEndpoint {
  const cluster = kc.getCurrentCluster();
  const server = overrides.clusterServer ?? cluster?.server;
  if (!server) throw new Error('no cluster server: set clusterServer in the broker config');
  let ca = '';
  if (overrides.clusterCaFile) ca = readFileSync(overrides.clusterCaFile).toString('base64');
  else if (cluster?.caData) ca = cluster.caData;
  else if (cluster?.caFile) ca = readFileSync(cluster.caFile).toString('base64');
  return { server, certificateAuthorityData: ca };
}
