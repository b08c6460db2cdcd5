// The edge's side of the tunnels: a TLS listener that broker replicas dial out to. A replica must
// present a client certificate that chains to the configured CA and whose public key is pinned;
// anything else is closed at once. On each accepted connection the edge is the HTTP/2 client (Node's
// http2, roles reversed) and opens one CONNECT stream per runner connection, spread round-robin
// over the replicas connected now.
import { createHash, X509Certificate } from 'node:crypto';
import { connect as connectHttp2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  EDGE_CLIENT_HEADER,
  EDGE_STREAM_WINDOW_BYTES,
  EDGE_TUNNEL_ALPN,
  edgeAuthority,
  type EdgeTarget,
} from '../../shared/edge-protocol.js';
import type { Logger } from '../logger.js';
import { keepPinging } from '../net/http2-ping.js';

export interface TunnelListenOptions {
  listen: { host: string; port: number };
  /** The edge's own certificate and key for the tunnel listener (never one for the runners' names). */
  cert: Buffer;
  key: Buffer;
  /** The CA the brokers' client certificates chain to. */
  clientCa: Buffer;
  /** Pins: base64 SHA-256 of each accepted client certificate's public key (SPKI, DER). */
  clientKeySha256: readonly string[];
  /** A tunnel that answers no ping within this long is dropped (a broker gone without a FIN). */
  pingIntervalMs?: number;
}

/** The pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo (DER). */
export function publicKeyPin(certDer: Buffer): string {
  const spki = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export interface TunnelPool {
  /** Where the tunnel listener listens (host:port). */
  address: string;
  /** Tunnels connected now. */
  readonly size: number;
  /**
   * A CONNECT stream to `target` on one of the tunnels, the broker's 200 received; tried on each
   * tunnel in turn until one answers. Rejects when none does.
   */
  openStream(target: EdgeTarget, client: string): Promise<ClientHttp2Stream>;
  close(): Promise<void>;
}

const DEFAULT_PING_MS = 10_000;

export async function startTunnelPool(options: TunnelListenOptions, logger: Logger): Promise<TunnelPool> {
  const pins = new Set(options.clientKeySha256);
  const sessions: ClientHttp2Session[] = [];
  let next = 0;
  let seq = 0;
  const server: TlsServer = createTlsServer({
    // Many streams' small frames share each tunnel: no Nagle wait behind an unacknowledged one.
    noDelay: true,
    cert: options.cert,
    key: options.key,
    ca: options.clientCa,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [EDGE_TUNNEL_ALPN],
    minVersion: 'TLSv1.3',
  });
  server.on('tlsClientError', (err, socket) =>
    logger.warn('tunnel refused', { peer: socket.remoteAddress, reason: err.message }),
  );
  server.on('secureConnection', (socket: TLSSocket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const pin = publicKeyPin(socket.getPeerCertificate().raw);
    if (!pins.has(pin) || socket.alpnProtocol !== EDGE_TUNNEL_ALPN) {
      logger.warn('tunnel refused', { peer, reason: 'client key not pinned', pin });
      socket.destroy();
      return;
    }
    const id = (seq += 1);
    const session = connectHttp2(`https://tunnel-${id}.invalid`, {
      createConnection: () => socket,
      settings: { initialWindowSize: EDGE_STREAM_WINDOW_BYTES, enablePush: false },
    });
    session.setLocalWindowSize(EDGE_STREAM_WINDOW_BYTES * 16);
    sessions.push(session);
    logger.info('tunnel up', { tunnel: id, peer, tunnels: sessions.length });
    // A ping with no answer within the interval means the broker is gone: drop its tunnel.
    keepPinging(session, options.pingIntervalMs ?? DEFAULT_PING_MS);
    session.on('error', (err) => logger.warn('tunnel error', { tunnel: id, error: err.message }));
    session.on('close', () => {
      const at = sessions.indexOf(session);
      if (at >= 0) sessions.splice(at, 1);
      logger.info('tunnel down', { tunnel: id, peer, tunnels: sessions.length });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;

  const usable = () => sessions.filter((s) => !s.closed && !s.destroyed);
  return {
    address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    get size() {
      return usable().length;
    },
    async openStream(target, client) {
      const live = usable();
      for (let i = 0; i < live.length; i += 1) {
        const session = live[(next + i) % live.length]!;
        const stream = await connectStream(session, target, client).catch(() => undefined);
        if (stream) {
          next = (next + i + 1) % Math.max(1, live.length);
          return stream;
        }
      }
      throw new Error(
        live.length === 0 ? 'no broker tunnel is connected' : 'no broker tunnel took the stream',
      );
    },
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of [...sessions]) s.destroy();
      await closed;
    },
  };
}

/** One CONNECT stream on `session`, resolved once the broker answers 200. */
function connectStream(
  session: ClientHttp2Session,
  target: EdgeTarget,
  client: string,
): Promise<ClientHttp2Stream> {
  return new Promise((resolve, reject) => {
    const stream = session.request(
      { ':method': 'CONNECT', ':authority': edgeAuthority(target), [EDGE_CLIENT_HEADER]: client },
      { endStream: false },
    );
    const fail = (why: string) => {
      stream.destroy();
      reject(new Error(why));
    };
    const onError = (err: Error) => fail(err.message);
    const onClose = () => fail('stream closed before an answer');
    stream.once('error', onError);
    stream.once('close', onClose);
    stream.once('response', (headers) => {
      stream.off('error', onError);
      stream.off('close', onClose);
      // The relay ends the runner's connection on 'close'; an error always comes with one.
      stream.on('error', () => {});
      if (headers[':status'] === 200) resolve(stream);
      else fail(`broker answered ${headers[':status']}`);
    });
  });
}
