// Authenticates a Kubernetes bearer token through the TokenReview API, the way the apiserver
// itself would: used so a grant's own token can revoke or renew that grant, and by the gateway. In
// gateway mode grant tokens carry the gateway's audience only, so they are reviewed for it.
import { parseServiceAccountUser } from '../../shared/contract.js';
import type { K8sClients } from './clients.js';

/** The service account a token belongs to, or undefined when the apiserver does not accept it. */
export async function reviewServiceAccountToken(
  k8s: K8sClients,
  token: string,
  /** The audience the token must carry; absent: the API server's own. */
  audience?: string,
): Promise<{ namespace: string; name: string; uid?: string } | undefined> {
  const spec = audience ? { token, audiences: [audience] } : { token };
  const review = await k8s.authn.createTokenReview({ body: { spec } });
  const status = review.status;
  if (audience && !status?.audiences?.includes(audience)) return undefined;
  const user = status?.authenticated ? status.user : undefined;
  const account = parseServiceAccountUser(user?.username ?? '');
  return account && { ...account, uid: user?.uid };
}
