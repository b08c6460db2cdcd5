// Listening: HTTPS from the configured certificate and key (plain HTTP only when the config says
// insecureHttp), request/header timeouts, and a graceful shutdown that stops accepting, lets
// in-flight requests finish within the grace period, then closes what is left. In edge-only mode
// (publicListeners: false) the same server binds no port: it serves only the connections the
// edge's tunnels hand to it (edge/stream-handover.ts).
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { answerClientErrors } from './client-errors.js';

export interface ServeOptions {
  tls?: { certFile: string; keyFile: string };
  insecureHttp?: boolean;
  requestTimeoutMs: number;
}

export interface ListenOptions extends ServeOptions {
  host: string;
  port: number;
}

export interface ServingServer {
  server: Server;
  /** Requests being answered right now. */
  inFlight(): number;
  /** Stops accepting, waits up to graceMs for in-flight requests, then drops the rest. */
  close(graceMs: number): Promise<void>;
}

export interface RunningServer extends ServingServer {
  url: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export async function listen(handler: Handler, options: ListenOptions): Promise<RunningServer> {
  const serving = createServing(handler, options);
  const { server } = serving;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { ...serving, url: `${options.tls ? 'https' : 'http'}://${host}:${addr.port}` };
}

/**
 * The server of `listen` binding no port at all: it answers only connections emitted to it
 * (edge-only mode). Node starts sweeping its connections for the header and request timeouts when
 * a server starts listening (its 'listening' event); the event is emitted here so that a handed-over
 * connection is held to the same deadlines as an accepted one.
 */
export function serveUnbound(handler: Handler, options: ServeOptions): ServingServer {
  const serving = createServing(handler, options);
  serving.server.emit('listening');
  return serving;
}

function createServing(handler: Handler, options: ServeOptions): ServingServer {
  if (!options.tls && !options.insecureHttp)
    throw new Error('refusing to listen without TLS: configure tls.certFile/keyFile or set insecureHttp');
  let active = 0;
  let drained: (() => void) | undefined;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    active += 1;
    res.on('close', () => {
      active -= 1;
      if (active === 0) drained?.();
    });
    void handler(req, res);
  };
  // Node enforces requestTimeout/headersTimeout only when it sweeps its connections, every 30 s by
  // default: a slowloris client could hold a socket for 30 s more than the deadline. Sweep often.
  const timeouts = { connectionsCheckingInterval: Math.min(1_000, options.requestTimeoutMs) };
  const server: Server = options.tls
    ? createHttpsServer(
        { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile), ...timeouts },
        onRequest,
      )
    : createHttpServer(timeouts, onRequest);
  // Slow clients must not hold sockets open: bounded time for headers and for the whole request.
  server.requestTimeout = options.requestTimeoutMs;
  server.headersTimeout = Math.min(options.requestTimeoutMs, 10_000);
  server.keepAliveTimeout = 5_000;
  answerClientErrors(server);

  return {
    server,
    inFlight: () => active,
    async close(graceMs) {
      // (An unbound server's close calls back at once, with ERR_SERVER_NOT_RUNNING: nothing to stop.)
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      if (active > 0) {
        await Promise.race([
          new Promise<void>((r) => (drained = r)),
          new Promise<void>((r) => setTimeout(r, graceMs).unref()),
        ]);
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
