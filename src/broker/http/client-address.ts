// Who sent a request, for the policy's `sourceRanges` and the audit line. The TCP peer, unless the
// peer is one of the admin's `trustedProxies`: then the address that proxy chain saw, read from
// X-Forwarded-For. Anyone can send an X-Forwarded-For header, so it is never read by default.
import type { IncomingMessage } from 'node:http';
import type { AddressSet } from '../net/cidr.js';
import { canonicalAddress } from '../net/ip-address.js';

export interface ClientAddress {
  /**
   * The client's address (canonical), or undefined when it cannot be told: the connection is gone,
   * or a trusted proxy passed on an X-Forwarded-For entry that is not an address. Undefined
   * matches no `sourceRanges`.
   */
  address: string | undefined;
  /** The TCP peer, when it was a trusted proxy and `address` came from X-Forwarded-For. */
  proxy?: string;
}

/** A port some proxies append: `192.0.2.1:4711`, `[2001:db8::1]:4711`, `[2001:db8::1]`. */
const WITH_PORT = /^(?:\[([^\]]+)\]|([0-9.]+))(?::([0-9]{1,5}))?$/;

function entryAddress(entry: string): string | undefined {
  const bare = canonicalAddress(entry);
  if (bare) return bare;
  const m = WITH_PORT.exec(entry);
  // Brackets are for IPv6 only: `[203.0.113.9]` is no form any proxy writes.
  if (!m || (m[1] !== undefined && !m[1].includes(':')) || Number(m[3] ?? 0) > 65535) return undefined;
  return canonicalAddress(m[1] ?? m[2]!);
}

/**
 * The client address of `req`. With a trusted peer, X-Forwarded-For (every such header, in
 * order, as one comma-separated list) is read from the right: each proxy appends the address it
 * saw, so the right-most entries are written by our proxies and everything further left by
 * whoever they received the request from, the client included. The first entry from the right
 * that is not itself a trusted proxy is the client; entries left of it are the client's own
 * claims and are never read. Reading the left-most entry instead would let any client name its
 * own address. If every entry is a trusted proxy, the left-most one is the client (a client
 * inside a trusted range can therefore claim any address in those ranges: keep them to the
 * proxies' own addresses). A trusted peer that sends no header is itself the client.
 */
export function clientAddressOf(req: IncomingMessage, trustedProxies: AddressSet | undefined): ClientAddress {
  const remote = req.socket.remoteAddress;
  // A link-local peer may carry its zone (fe80::1%eth0): local detail, not part of the address.
  const peer = remote === undefined ? undefined : canonicalAddress(remote.replace(/%.*$/, ''));
  if (!peer || !trustedProxies?.has(peer)) return { address: peer };
  const headers = req.headersDistinct['x-forwarded-for'];
  if (!headers) return { address: peer };
  const entries = headers.join(',').split(',');
  let address: string | undefined;
  for (let i = entries.length - 1; i >= 0; i -= 1) {
    address = entryAddress(entries[i]!.trim());
    // Garbage where a trusted proxy should have written an address: nobody can be named.
    if (!address) return { address: undefined, proxy: peer };
    if (!trustedProxies.has(address)) break;
  }
  return { address, proxy: peer };
}

/** The audit line's client fields: the address the policy saw and, behind a proxy, the proxy. */
export function clientFields(client: ClientAddress): { clientAddress: string; proxyAddress?: string } {
  return { clientAddress: client.address ?? 'unknown', ...(client.proxy && { proxyAddress: client.proxy }) };
}
