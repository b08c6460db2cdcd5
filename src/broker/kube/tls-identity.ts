// Telling when the TLS side of a connection to the API server has changed (a rotated CA, client
// certificate or key): the pooled connections of the old identity must then stop being used, which
// PerIdentity does for the broker's connection (connection.ts) and the gateway's lanes alike.
import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';
import type { Dispatcher } from 'undici';

/** A digest of everything that shapes the TLS connection (never logged; it covers key material). */
export function tlsIdentity(server: string, o: RequestOptions): string {
  const h = createHash('sha256');
  h.update(`${server}\n${String(o.rejectUnauthorized)}\n${o.servername ?? ''}\n`);
  for (const part of [o.ca, o.cert, o.key, o.pfx, o.passphrase]) {
    if (part === undefined) h.update('-');
    else if (Buffer.isBuffer(part) || typeof part === 'string') h.update(part);
    else h.update(JSON.stringify(part));
    h.update('\n');
  }
  return h.digest('hex');
}

/**
 * One dispatcher per TLS identity. When the identity changes (a rotated CA or certificate file) the
 * next call gets a new one; the old one closes once its calls in flight have ended.
 */
export class PerIdentity<D extends Dispatcher> {
  private held: { key: string; dispatcher: D } | undefined;

  get(key: string, build: () => D): D {
    if (this.held?.key !== key) {
      const previous = this.held?.dispatcher;
      this.held = { key, dispatcher: build() };
      void previous?.close().catch(() => undefined);
    }
    return this.held.dispatcher;
  }

  destroy(): void {
    void this.held?.dispatcher.destroy().catch(() => undefined);
    this.held = undefined;
  }
}
