// The Kubernetes API clients the broker uses, from a kubeconfig file or the pod's in-cluster identity.
import { readFileSync } from 'node:fs';
import {
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';

export interface K8sClients {
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  authn: AuthenticationV1Api;
  coordination: CoordinationV1Api;
}

/** A kubeconfig from `path`, or the in-cluster service account when no path is given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

export function makeK8sClients(kc: KubeConfig): K8sClients {
  return {
    core: kc.makeApiClient(CoreV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    authn: kc.makeApiClient(AuthenticationV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
  };
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
