// How a failed Kubernetes call on a grant's path reaches the client: refused (the cluster said no)
// or unavailable (retry later); the log keeps the API server's own message.
import { BrokerError } from '../../shared/errors.js';
import { describeK8sError, isRefused, statusCodeOf } from '../kube/errors.js';

/** Maps a Kubernetes failure to a generic client error; the log keeps the API's own message. */
export function clusterError(step: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const status = statusCodeOf(err);
  const message = `${step}: ${describeK8sError(err)}`;
  if (isRefused(err) || status === 409)
    return new BrokerError('ERR_INTERNAL', 'grant_refused_by_cluster', message, { cause: err });
  return new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', message, { cause: err });
}
