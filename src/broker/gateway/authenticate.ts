// Which live grant a gateway request acts as. The token's unverified claims are checked against
// the table first (a forged token, another identity's or an ended grant's costs no API call), then
// TokenReview for the gateway's audience (cached), then the table again, since the grant may have
// ended during the review.
import type { IncomingMessage } from 'node:http';
import type { AuditEvent } from '../audit.js';
import { isGrantId } from '../naming.js';
import { claimedFields, claimedIdentity, grantFields, type ClaimedIdentity } from './call-attribution.js';
import type { LiveGrant, LiveGrants } from './live-grants.js';
import { bearerTokenOf, type Refusal } from './request-guard.js';
import type { TokenReviewCache } from './token-review-cache.js';

export const TOKEN_REJECTED: Refusal = {
  status: 401,
  reason: 'grant_not_live',
  message: 'the token is not that of a live k8s-ephemeral-access grant (revoked, expired or never issued)',
};

export interface AuthenticationDeps {
  table: Pick<LiveGrants, 'live' | 'ended'>;
  /** False while this namespace's grants cannot be known (grant-watch.ts): refuse, do not guess. */
  synced: (namespace: string) => boolean;
  reviews: Pick<TokenReviewCache, 'identify'>;
  /** The running policy's namespaces: a grant elsewhere is not one the gateway serves. */
  namespaces: () => readonly string[];
}

/** The live grant a request may act as, or why not (with what the token claimed). */
export type Authentication = { grant: LiveGrant } | (Refusal & { claimed?: ClaimedIdentity });

export interface Authenticator {
  authenticate(req: IncomingMessage): Promise<Authentication>;
  /**
   * Whose a request is, for the line of a refusal made before (or without) forwarding: the grant
   * and run when its token proves a live grant, else what it claims; nothing when that cannot be
   * asked.
   */
  attribution(req: IncomingMessage): Promise<Partial<AuditEvent>>;
}

export function createAuthenticator(deps: AuthenticationDeps): Authenticator {
  const ended = (uid: string) => deps.table.ended(uid);
  const authenticate = async (req: IncomingMessage): Promise<Authentication> => {
    const token = bearerTokenOf(req.rawHeaders);
    if (typeof token !== 'string') return token;
    const claimed = claimedIdentity(token);
    if (!claimed || !isGrantId(claimed.name) || !deps.namespaces().includes(claimed.namespace))
      return { ...TOKEN_REJECTED, claimed };
    if (!deps.synced(claimed.namespace))
      return {
        status: 503,
        reason: 'gateway_not_synced',
        message: 'the gateway cannot read grants right now; retry',
        claimed,
      };
    const before = deps.table.live(claimed.uid);
    if (!before || before.grantId !== claimed.name || before.namespace !== claimed.namespace)
      return { ...TOKEN_REJECTED, claimed };
    const who = await deps.reviews.identify(token, claimed.expiresAt);
    if (!who || who.uid !== claimed.uid || who.namespace !== claimed.namespace || who.name !== claimed.name)
      return { ...TOKEN_REJECTED, reason: 'kubernetes_token_rejected', claimed };
    // Again after the TokenReview's await: the grant may have gone meanwhile.
    const grant = deps.table.live(claimed.uid);
    if (!grant) return { ...TOKEN_REJECTED, claimed };
    return { grant };
  };
  return {
    authenticate,
    async attribution(req) {
      try {
        const auth = await authenticate(req);
        return 'grant' in auth ? grantFields(auth.grant) : claimedFields(auth.claimed, ended);
      } catch {
        return {};
      }
    },
  };
}
