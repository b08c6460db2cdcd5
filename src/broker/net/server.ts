// Listening: HTTPS from the configured certificate and key (plain HTTP only when the config says
// insecureHttp), request/header timeouts, and a graceful shutdown that stops accepting, lets
// in-flight requests finish within the grace period, then closes what is left.
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

export interface ListenOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  insecureHttp?: boolean;
  requestTimeoutMs: number;
}

export interface RunningServer {
  server: Server;
  url: string;
  /** Requests being answered right now. */
  inFlight(): number;
  /** Stops accepting, waits up to graceMs for in-flight requests, then drops the rest. */
  close(graceMs: number): Promise<void>;
}

export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  options: ListenOptions,
): Promise<RunningServer> {
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

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${options.tls ? 'https' : 'http'}://${host}:${addr.port}`;

  return {
    server,
    url,
    inFlight: () => active,
    async close(graceMs) {
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
