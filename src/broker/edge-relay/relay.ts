// The edge's public side: runners connect here. For each connection it reads the TLS ClientHello
// only as far as its server name, picks the broker listener that name is routed to, and passes
// the raw bytes, the ClientHello first, through a CONNECT stream of a broker's tunnel; the answer
// comes back the same way. It never terminates TLS, so it never sees a token or a request; its
// log lines name the client, the server name and byte counts only.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { EdgeTarget } from '../../shared/edge-protocol.js';
import type { Logger } from '../logger.js';
import { MAX_HELLO_BYTES, readServerName } from './client-hello.js';
import type { TunnelPool } from './tunnel-pool.js';

export interface RelayOptions {
  listen: { host: string; port: number };
  /** Server name (lower-case) → the broker listener it reaches; any other name is refused. */
  routes: ReadonlyMap<string, EdgeTarget>;
  /** A runner must send its whole ClientHello within this long. */
  helloTimeoutMs: number;
}

export interface RunningRelay {
  address: string;
  /** Runner connections being relayed now. */
  readonly open: number;
  close(): Promise<void>;
}

/** The peer as `address:port` (`[v6]:port`), the form the broker reads back. */
function peerOf(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return `${a.includes(':') ? `[${a}]` : a}:${socket.remotePort ?? 0}`;
}

/** The ClientHello's bytes and server name, or why the connection is refused. */
function readHello(
  socket: Socket,
  timeoutMs: number,
): Promise<{ head: Buffer; serverName?: string } | string> {
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    const done = (result: { head: Buffer; serverName?: string } | string) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      resolve(result);
    };
    const timer = setTimeout(() => done('no ClientHello in time'), timeoutMs);
    const onEnd = () => done('closed before its ClientHello');
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const read = readServerName(head.subarray(0, MAX_HELLO_BYTES));
      if (read.state === 'bad') done(read.reason);
      else if (read.state === 'done') done({ head, serverName: read.serverName });
      else if (head.length >= MAX_HELLO_BYTES) done('ClientHello too long');
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  });
}

export async function startRelay(
  options: RelayOptions,
  pool: TunnelPool,
  logger: Logger,
): Promise<RunningRelay> {
  const sockets = new Set<Socket>();
  const relay = async (socket: Socket) => {
    const client = peerOf(socket);
    const started = Date.now();
    const hello = await readHello(socket, options.helloTimeoutMs);
    if (typeof hello === 'string') {
      logger.info('connection refused', { client, reason: hello });
      return void socket.destroy();
    }
    const target = hello.serverName === undefined ? undefined : options.routes.get(hello.serverName);
    if (!target) {
      logger.info('connection refused', { client, serverName: hello.serverName ?? null, reason: 'no route' });
      return void socket.destroy();
    }
    let stream;
    try {
      stream = await pool.openStream(target, client);
    } catch (err) {
      logger.warn('connection refused', { client, target, reason: (err as Error).message });
      return void socket.destroy();
    }
    if (socket.destroyed) return void stream.destroy();
    stream.write(hello.head);
    socket.pipe(stream);
    stream.pipe(socket);
    // Either side gone ends both; half-closes pass through (pipe ends the other side's writer).
    stream.on('close', () => socket.destroy());
    socket.on('close', () => {
      stream.destroy();
      logger.info('connection relayed', {
        client,
        target,
        bytesFromClient: socket.bytesRead,
        bytesToClient: socket.bytesWritten,
        ms: Date.now() - started,
      });
    });
    socket.resume();
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    void relay(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    address: `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    get open() {
      return sockets.size;
    },
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
