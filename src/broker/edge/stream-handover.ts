// A runner's connection arriving through the edge is an HTTP/2 stream, not a socket. It is handed
// to the broker's own HTTPS listener as if it had been accepted there: the broker terminates the
// runner's TLS with its usual certificate, and the request handlers see the runner's address (the
// edge's header) as the socket's remote address, so sourceRanges and audit lines name the client.
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';
import { canonicalAddress } from '../net/ip-address.js';

export interface HandoverTarget {
  /** The broker's (or the gateway's) HTTPS server. */
  server: TlsServer;
  /** Its certificate and key, as it serves them. */
  secureContext: SecureContext;
}

export interface EdgeClient {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/** A runner's TLS handshake through the edge must finish within this long, as at a listener. */
export const HANDOVER_HANDSHAKE_MS = 10_000;

const CLIENT = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/;

/** The edge's `address:port` header, or undefined when it is not one. */
export function parseEdgeClient(value: string | string[] | undefined): EdgeClient | undefined {
  if (typeof value !== 'string') return undefined;
  const m = CLIENT.exec(value);
  const address = m && canonicalAddress(m[1] ?? m[2]!);
  const port = m ? Number(m[3]) : NaN;
  if (!address || port > 65535) return undefined;
  return { address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' };
}

/** Serves `stream` on `target` as one more accepted TLS connection from `client`. */
export function handOver(stream: Duplex, target: HandoverTarget, client: EdgeClient): void {
  const socket = new TLSSocket(stream, {
    isServer: true,
    secureContext: target.secureContext,
    server: target.server,
  });
  // The socket's peer is the runner, not the tunnel: what req.socket.remoteAddress reads.
  Object.defineProperties(socket, {
    remoteAddress: { value: client.address },
    remotePort: { value: client.port },
    remoteFamily: { value: client.family },
  });
  const timer = setTimeout(() => socket.destroy(), HANDOVER_HANDSHAKE_MS);
  timer.unref();
  socket.once('secure', () => {
    clearTimeout(timer);
    target.server.emit('secureConnection', socket);
  });
  // Before 'secure', a failed handshake is the runner's problem; after, the HTTP server handles it.
  socket.on('error', () => socket.destroy());
  socket.once('close', () => {
    clearTimeout(timer);
    stream.destroy();
  });
  stream.once('close', () => socket.destroy());
}
