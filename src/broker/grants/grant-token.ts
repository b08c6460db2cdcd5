// Minting a token for a grant's ServiceAccount: at creation (grants.ts), when a renewal would let
// the grant outlive its token (renew-grant.ts), and in gateway mode the gateway's own credential
// for forwarding (gateway/upstream-credentials.ts).
import type { K8sClients } from '../kube/clients.js';

/** TokenRequest refuses anything shorter (MinTokenAgeSec). The grant itself may be shorter. */
export const MIN_TOKEN_SECONDS = 600;

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
    body: {
      // The uid pins the token to this very ServiceAccount, not a same-named successor.
      metadata: { uid: grant.uid },
      spec: {
        audiences: audience ? [audience] : [],
        expirationSeconds: Math.max(MIN_TOKEN_SECONDS, Math.ceil(seconds)),
      },
    },
  });
  const token = tr.status?.token;
  const tokenExpiresAt = tr.status?.expirationTimestamp ? new Date(tr.status.expirationTimestamp) : undefined;
  if (!token || !tokenExpiresAt) throw new Error('TokenRequest returned no token or expiry');
  return { token, tokenExpiresAt };
}
