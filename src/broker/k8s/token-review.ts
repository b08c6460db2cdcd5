// Authenticates a Kubernetes bearer token through the TokenReview API, the way the apiserver
// itself would: used so a grant's own token can revoke that grant.
import { SERVICE_ACCOUNT_USER_PREFIX } from '../../shared/contract.js';
import type { K8sClients } from './clients.js';

/** The service account a token belongs to, or undefined when the apiserver does not accept it. */
export async function reviewServiceAccountToken(
  k8s: K8sClients,
  token: string,
): Promise<{ namespace: string; name: string; uid?: string } | undefined> {
  const review = await k8s.authn.createTokenReview({ body: { spec: { token } } });
  const user = review.status?.authenticated ? review.status.user : undefined;
  const username = user?.username;
  if (!username?.startsWith(SERVICE_ACCOUNT_USER_PREFIX)) return undefined;
  const [namespace, name, ...rest] = username.slice(SERVICE_ACCOUNT_USER_PREFIX.length).split(':');
  if (!namespace || !name || rest.length > 0) return undefined;
  return { namespace, name, uid: user?.uid };
}
