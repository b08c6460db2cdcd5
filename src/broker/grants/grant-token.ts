// Minting a token for a grant's ServiceAccount: at creation (grants.ts), when a renewal would let
// the grant outlive its token (renew-grant.ts), and in gateway mode the gateway's own credential
// for forwarding (gateway/upstream-credentials.ts).
import type { K8sClients } from '../kube/clients.js';
import { tokenRequestBody } from './grant-objects.js';

export async function requestGrantToken(
  k8s: K8sClients,
  grant: { namespace: string; name: string; uid: string },
  seconds: number,
  /** The token's one audience; absent: the API server's own (a token the API server accepts). */
  audience?: string,
): Promise<{ token: string; tokenExpiresAt: Date }> {
  const tr = await k8s.hotPath.createNamespacedServiceAccountToken({
    name: grant.name,
    namespace: grant.namespace,
    // The uid pins the token to this very ServiceAccount, not a same-named successor.
    body: tokenRequestBody(grant.uid, seconds, audience),
  });
  const token = tr.status?.token;
  const tokenExpiresAt = tr.status?.expirationTimestamp ? new Date(tr.status.expirationTimestamp) : undefined;
  if (!token || !tokenExpiresAt) throw new Error('TokenRequest returned no token or expiry');
  return { token, tokenExpiresAt };
}
