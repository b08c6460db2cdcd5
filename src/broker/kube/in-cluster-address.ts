// Whether the API server address handed to runners is one only the cluster's own network reaches.
// Left unset in a pod, clusterServer falls back to the broker's in-cluster address (the `kubernetes`
// Service's cluster IP), and jobs on GitHub-hosted runners then hang in kubectl. Runners inside the
// cluster (e.g. Actions Runner Controller) reach it fine, so this warns at start and sets a metric
// (k8s_ea_cluster_server_in_cluster, alerted on in deploy/monitoring/) rather than refusing to start.
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';

/**
 * Host names of Services, `<svc>.<ns>.svc` (and with the default cluster domain, `.svc.cluster.local`),
 * and the API server's own short forms. A custom cluster domain or a bare cluster IP is not recognised.
 */
const SERVICE_HOST = /^kubernetes(\.default)?$|\.svc(\.cluster\.local)?$/;

/**
 * Why `server` is an in-cluster address, or undefined. `fromPodConfig`: the broker runs with its pod's
 * in-cluster configuration and no clusterServer, so runners get the address the pod uses.
 */
export function inClusterAddress(server: string, fromPodConfig: boolean): string | undefined {
  if (fromPodConfig)
    return "clusterServer is not set, so runners get the broker pod's own in-cluster API server address";
  let host: string;
  try {
    host = new URL(server).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  return SERVICE_HOST.test(host)
    ? `${host} is a Service name, resolvable only inside the cluster`
    : undefined;
}

export function reportInClusterAddress(
  server: string,
  fromPodConfig: boolean,
  logger: Logger,
  metrics: BrokerMetrics,
): void {
  const why = inClusterAddress(server, fromPodConfig);
  metrics.clusterServerInCluster.set(why ? 1 : 0);
  if (why)
    logger.warn('runners get an API server address that only the cluster reaches', {
      server,
      why,
      fix: 'set clusterServer (and clusterCaFile) in the broker config to the address runners reach; ignore this if your runners run inside the cluster',
    });
}
