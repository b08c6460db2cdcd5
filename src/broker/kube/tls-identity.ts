// Telling when the TLS side of a connection to the API server has changed (a rotated CA, client
// certificate or key): the pooled connections of the old identity must then stop being used.
import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';

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
