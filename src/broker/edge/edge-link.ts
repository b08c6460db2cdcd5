// One replica's tunnel to one edge: dialled outbound with mutual TLS (the broker's client
// certificate, which the edge pins; the edge's certificate checked against its pinned CA), then
// served as HTTP/2 with the roles reversed: the edge opens streams, the broker answers them.
// Redialled with bounded backoff whenever it drops.
import {
  createServer as createHttp2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { EDGE_STREAM_WINDOW_BYTES, EDGE_TUNNEL_ALPN } from '../../shared/edge-protocol.js';
import type { Logger } from '../logger.js';
import { keepPinging } from '../net/http2-ping.js';
import { backoffDelay, type BackoffOptions } from './backoff.js';

export interface EdgeLinkOptions {
  host: string;
  port: number;
  /** The name the edge's tunnel certificate must carry (default: host). */
  serverName?: string;
  /** The edge's CA: the only one its certificate may chain to. */
  ca: Buffer;
  /** The broker's client certificate and key (the edge pins the key). */
  cert: Buffer;
  key: Buffer;
  backoff: BackoffOptions;
  /** Pings the edge this often; no answer within the same time drops the tunnel. */
  pingIntervalMs?: number;
}

export interface EdgeLink {
  readonly connected: boolean;
  /** Stops redialling; open streams get `graceMs` (GOAWAY: the edge sends new ones elsewhere). */
  close(graceMs: number): Promise<void>;
}

const DEFAULT_PING_MS = 10_000;

export function startEdgeLink(
  options: EdgeLinkOptions,
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void,
  logger: Logger,
): EdgeLink {
  const where = `${options.host}:${options.port}`;
  const pingMs = options.pingIntervalMs ?? DEFAULT_PING_MS;
  let attempt = 0;
  let stopped = false;
  let socket: TLSSocket | undefined;
  let connected = false;
  let retry: NodeJS.Timeout | undefined;
  let current: ServerHttp2Session | undefined;
  const http2 = createHttp2Server({
    settings: { initialWindowSize: EDGE_STREAM_WINDOW_BYTES, enablePush: false },
  });
  http2.on('stream', onStream);
  http2.on('session', (session) => {
    current = session;
    session.setLocalWindowSize(EDGE_STREAM_WINDOW_BYTES * 16);
    keepPinging(session, pingMs);
    session.on('error', () => {});
  });

  const dial = () => {
    if (stopped) return;
    const upSince = Date.now();
    const s = connectTls({
      host: options.host,
      port: options.port,
      servername: options.serverName ?? options.host,
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      ALPNProtocols: [EDGE_TUNNEL_ALPN],
      minVersion: 'TLSv1.3',
    });
    socket = s;
    s.setKeepAlive(true, pingMs);
    // Many streams' small frames share this one socket: no Nagle wait behind an unacknowledged one.
    s.setNoDelay(true);
    s.once('secureConnect', () => {
      if (s.alpnProtocol !== EDGE_TUNNEL_ALPN) return void s.destroy(new Error('the edge did not speak h2'));
      connected = true;
      logger.info('edge tunnel up', { edge: where });
      http2.emit('connection', s);
    });
    s.on('error', (err) => logger.warn('edge tunnel error', { edge: where, error: err.message }));
    s.once('close', () => {
      const wasUp = connected;
      connected = false;
      if (stopped) return;
      // A tunnel that stayed up a while resets the backoff; a refused or flapping one climbs it.
      if (Date.now() - upSince >= options.backoff.maxMs) attempt = 0;
      const delay = backoffDelay(attempt, options.backoff);
      attempt += 1;
      logger.info(wasUp ? 'edge tunnel down' : 'edge tunnel not up', { edge: where, retryInMs: delay });
      retry = setTimeout(dial, delay);
    });
  };
  dial();

  return {
    get connected() {
      return connected;
    },
    async close(graceMs) {
      stopped = true;
      clearTimeout(retry);
      const s = socket;
      if (!s || s.destroyed) return;
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      // GOAWAY: the edge opens no new stream here; streams open now may finish within graceMs.
      current?.close();
      const timer = setTimeout(() => s.destroy(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
