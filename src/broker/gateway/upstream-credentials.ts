// The credential the gateway forwards with. A job's token is for the gateway's audience only, which
// the API server refuses; the gateway sends each request on with a token of the same grant
// ServiceAccount for the API server's audience, which only the broker ever holds. Each replica
// mints its own, per grant, on the grant's first request there (one TokenRequest, pinned to the
// ServiceAccount's uid), keeps it in memory only (never logged: its credential id is), and drops it
// when the grant leaves the live-grant table or is no longer live (revoked, reaped, expired).
// Concurrent first requests of one grant share one TokenRequest.
import type { LiveGrant } from './live-grants.js';

export interface MintedCredential {
  token: string;
  tokenExpiresAt: Date;
}

/** Mints an API-server token for the grant's ServiceAccount (uid-pinned), valid `seconds`. */
export type MintCredential = (
  grant: { namespace: string; name: string; uid: string },
  seconds: number,
) => Promise<MintedCredential>;

/** A credential this close to its own end is replaced before it is used again. */
export const CREDENTIAL_REFRESH_MS = 60_000;

export class UpstreamCredentials {
  private readonly held = new Map<string, { token: string; expiresAt: number }>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly mint: MintCredential,
    private readonly now: () => number = Date.now,
    /** Called once per minted credential, with the grant id (for the log; never the token). */
    private readonly onMinted: (grant: LiveGrant, credential: MintedCredential) => void = () => undefined,
  ) {}

  /** Credentials held right now. */
  get size(): number {
    return this.held.size;
  }

  /** The API-server token to forward this live grant's request with. */
  async tokenFor(grant: LiveGrant): Promise<string> {
    const held = this.held.get(grant.uid);
    if (held && held.expiresAt - this.now() > CREDENTIAL_REFRESH_MS) return held.token;
    return this.pending.get(grant.uid) ?? this.mintFor(grant);
  }

  /** Forgets the grant's credential (it left the table); a mint under way is not kept either. */
  drop(uid: string): void {
    this.held.delete(uid);
    this.pending.delete(uid);
  }

  /** Drops every credential whose grant is no longer live (expiry needs no event). */
  retainLive(isLive: (uid: string) => boolean): void {
    for (const uid of this.held.keys()) if (!isLive(uid)) this.drop(uid);
  }

  private mintFor(grant: LiveGrant): Promise<string> {
    const { uid } = grant;
    let minting!: Promise<string>;
    // eslint-disable-next-line prefer-const -- the closure reads it, after this assignment
    minting = (async () => {
      // As long as the grant may last now (TokenRequest's minimum applies): once a renewal has
      // moved the grant's end past it, the next request close to its end gets a new one.
      const seconds = (grant.expiresAt - this.now()) / 1000;
      const credential = await this.mint({ namespace: grant.namespace, name: grant.grantId, uid }, seconds);
      // Kept only if the grant was not dropped meanwhile (drop() forgets the mint under way).
      if (this.pending.get(uid) === minting) {
        this.held.set(uid, { token: credential.token, expiresAt: credential.tokenExpiresAt.getTime() });
        this.onMinted(grant, credential);
      }
      return credential.token;
    })().finally(() => {
      if (this.pending.get(uid) === minting) this.pending.delete(uid);
    });
    this.pending.set(uid, minting);
    return minting;
  }
}
