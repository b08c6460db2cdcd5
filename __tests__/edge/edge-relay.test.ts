// The edge relay and the broker's outbound tunnels, wired together in one process over loopback:
// real TLS on both layers, real HTTP/2, real sockets. What the cluster test proves with the real
// broker and network namespaces, this proves piece by piece, including the refusals.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, request, type Server } from 'node:https';
import { connect as connectTcp, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, Server as TlsServer } from 'node:tls';
import { createLogger } from '../../src/broker/logger.js';
import { serveUnbound } from '../../src/broker/net/server.js';
import { startEdgeTunnels, type RunningEdgeTunnels } from '../../src/broker/edge/start-edge-tunnels.js';
import { startRelay, type RunningRelay } from '../../src/broker/edge-relay/relay.js';
import { publicKeyPin, startTunnelPool, type TunnelPool } from '../../src/broker/edge-relay/tunnel-pool.js';
import { issue, makeCa, type CertFiles } from '../../test/support/edge-pki.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.edge-test-secret-token.c2lnbmF0dXJl';
const PATH = '/apis/apps/v1/namespaces/edge-secret-path/deployments';

let dir: string;
let runnerCa: CertFiles;
let brokerServing: CertFiles;
let edgeCa: CertFiles;
let edgeTunnelCert: CertFiles;
let brokerCa: CertFiles;
let brokerClient: CertFiles;
let otherClient: CertFiles;
let strangerCa: CertFiles;
let strangerClient: CertFiles;
let strangerEdge: CertFiles;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-relay-'));
  runnerCa = makeCa(dir, 'runner-facing');
  brokerServing = issue(dir, runnerCa, 'broker-serving', { server: ['DNS:broker.test', 'DNS:gateway.test'] });
  edgeCa = makeCa(dir, 'edge');
  edgeTunnelCert = issue(dir, edgeCa, 'edge-tunnel', { server: ['DNS:edge.test'] });
  brokerCa = makeCa(dir, 'broker-client');
  brokerClient = issue(dir, brokerCa, 'broker-client', { client: true });
  otherClient = issue(dir, brokerCa, 'other-client', { client: true });
  strangerCa = makeCa(dir, 'stranger');
  strangerClient = issue(dir, strangerCa, 'stranger-client', { client: true });
  strangerEdge = issue(dir, strangerCa, 'stranger-edge', { server: ['DNS:edge.test'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const logLines: string[] = [];
const logger = createLogger({ write: (l) => void logLines.push(l) });
const started: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
  logLines.length = 0;
});

/** A broker's HTTPS server (never listening): answers with the path's name and the peer it saw. */
function brokerServer(name: string): Server {
  return createHttpsServer({ cert: brokerServing.cert, key: brokerServing.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () =>
      res.end(
        JSON.stringify({
          name,
          peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
          url: req.url,
          body,
        }),
      ),
    );
  });
}

async function startEdge(port = 0): Promise<{ pool: TunnelPool; relay: RunningRelay }> {
  const pool = await startTunnelPool(
    {
      listen: { host: '127.0.0.1', port },
      cert: edgeTunnelCert.cert,
      key: edgeTunnelCert.key,
      clientCa: brokerCa.cert,
      clientKeySha256: [publicKeyPin(pemToDer(brokerClient.cert))],
    },
    logger,
  );
  const relay = await startRelay(
    {
      listen: { host: '127.0.0.1', port: 0 },
      routes: new Map([
        ['broker.test', 'broker'],
        ['gateway.test', 'gateway'],
      ]),
      helloTimeoutMs: 2_000,
    },
    pool,
    logger,
  );
  started.push(relay, pool);
  return { pool, relay };
}

const pemToDer = (pem: Buffer): Buffer =>
  Buffer.from(pem.toString().replace(/-----[^-]+-----|\s/g, ''), 'base64');

function startBroker(
  pool: TunnelPool,
  client: CertFiles = brokerClient,
  ca: CertFiles = edgeCa,
  servers: Record<'broker' | 'gateway', TlsServer> = {
    broker: brokerServer('broker'),
    gateway: brokerServer('gateway'),
  },
): RunningEdgeTunnels {
  const [host, port] = pool.address.split(':');
  const tunnels = startEdgeTunnels(
    {
      addresses: [{ host: host!, port: Number(port) }],
      serverName: 'edge.test',
      caFile: ca.certFile,
      clientTls: { certFile: client.certFile, keyFile: client.keyFile },
      backoff: { initialMs: 50, maxMs: 400 },
    },
    {
      broker: { server: servers.broker, tls: brokerServing },
      gateway: { server: servers.gateway, tls: brokerServing },
    },
    logger,
  );
  started.push({ close: () => tunnels.close(0) });
  return tunnels;
}

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A runner's HTTPS call to `servername` through the relay; rejects when the connection fails. */
function call(
  relay: RunningRelay,
  servername: string,
  options: { path?: string; body?: string; agent?: false } = {},
): Promise<{
  status: number;
  json: { name: string; peer: string; url: string; body: string };
  local: string;
}> {
  const [host, port] = relay.address.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        servername,
        ca: runnerCa.cert,
        method: 'POST',
        path: options.path ?? PATH,
        headers: { authorization: `Bearer ${TOKEN}` },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            json: JSON.parse(text),
            local: `127.0.0.1:${req.socket!.localPort}`,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body ?? `{"token":"${TOKEN}"}`);
  });
}

describe('edge relay and broker tunnels', () => {
  it("relays runner TLS to the broker's server the SNI names, with the runner's own address", async () => {
    const { pool, relay } = await startEdge();
    startBroker(pool);
    await until(() => pool.size === 1, 'the tunnel');
    const toBroker = await call(relay, 'broker.test');
    expect(toBroker.status).toBe(200);
    expect(toBroker.json).toMatchObject({ name: 'broker', url: PATH, body: `{"token":"${TOKEN}"}` });
    expect(toBroker.json.peer).toBe(toBroker.local);
    const toGateway = await call(relay, 'gateway.test');
    expect(toGateway.json.name).toBe('gateway');
    // A large body crosses the stream windows both ways.
    const big = 'x'.repeat(5 << 20);
    expect((await call(relay, 'broker.test', { body: big })).json.body.length).toBe(big.length);
  });

  it('refuses a server name with no route, a non-TLS client, and any connection while no tunnel is up', async () => {
    const { pool, relay } = await startEdge();
    await expect(call(relay, 'broker.test')).rejects.toThrow();
    expect(logLines.join('')).toContain('no broker tunnel is connected');
    startBroker(pool);
    await until(() => pool.size === 1, 'the tunnel');
    await expect(call(relay, 'elsewhere.test')).rejects.toThrow();
    const [host, port] = relay.address.split(':');
    const plain = connectTcp(Number(port), host);
    plain.write(`GET ${PATH} HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    await new Promise((r) => plain.on('close', r));
    expect(logLines.join('')).toContain('not a TLS handshake');
  });

  it.each([
    ['a client key that is not pinned (same CA, other key)', () => otherClient, /client key not pinned/],
    ['a client certificate from another CA', () => strangerClient, /socket hang up|certificate|unknown ca/i],
    ['no client certificate', () => undefined, /peer did not return a certificate/],
  ])('refuses a tunnel with %s', async (_what, client, reason) => {
    const { pool, relay } = await startEdge();
    const cert = client();
    if (cert) startBroker(pool, cert);
    else {
      const [host, port] = pool.address.split(':');
      const bare = connectTls({
        host,
        port: Number(port),
        servername: 'edge.test',
        ca: edgeCa.cert,
        ALPNProtocols: ['h2'],
      });
      bare.on('error', () => {});
      started.push({ close: async () => void bare.destroy() });
    }
    await until(() => logLines.some((l) => l.includes('tunnel refused')), 'a refusal');
    expect(logLines.filter((l) => l.includes('tunnel refused')).join('')).toMatch(reason);
    expect(logLines.join('')).not.toContain('"msg":"tunnel up"');
    expect(pool.size).toBe(0);
    // A runner gets nothing: its connection is closed, no other broker answers it.
    await expect(call(relay, 'broker.test')).rejects.toThrow();
  });

  it('does not connect to an edge whose certificate is not from the pinned CA', async () => {
    const pool = await startTunnelPool(
      {
        listen: { host: '127.0.0.1', port: 0 },
        cert: strangerEdge.cert,
        key: strangerEdge.key,
        clientCa: brokerCa.cert,
        clientKeySha256: [publicKeyPin(pemToDer(brokerClient.cert))],
      },
      logger,
    );
    started.push(pool);
    const tunnels = startBroker(pool);
    await until(
      () => logLines.filter((l) => l.includes('edge tunnel not up')).length >= 2,
      'two failed dials',
    );
    expect(tunnels.connected()).toBe(0);
    expect(pool.size).toBe(0);
    expect(logLines.join('')).toContain('unable to verify');
  });

  it('spreads streams over two replicas and keeps serving on one when the other is gone', async () => {
    const { pool, relay } = await startEdge();
    startBroker(pool, brokerClient, edgeCa, {
      broker: brokerServer('replica-a'),
      gateway: brokerServer('g'),
    });
    const b = startBroker(pool, brokerClient, edgeCa, {
      broker: brokerServer('replica-b'),
      gateway: brokerServer('g'),
    });
    await until(() => pool.size === 2, 'two tunnels');
    const names = new Set<string>();
    for (let i = 0; i < 6; i += 1) names.add((await call(relay, 'broker.test')).json.name);
    expect([...names].sort()).toEqual(['replica-a', 'replica-b']);
    await b.close(0);
    await until(() => pool.size === 1, 'one tunnel left');
    for (let i = 0; i < 4; i += 1) expect((await call(relay, 'broker.test')).json.name).toBe('replica-a');
  });

  it('redials an edge that restarted on the same port', async () => {
    const first = await startEdge();
    const tunnels = startBroker(first.pool);
    await until(() => first.pool.size === 1, 'the tunnel');
    const port = Number(first.pool.address.split(':')[1]);
    await first.relay.close();
    await first.pool.close();
    await until(() => tunnels.connected() === 0, 'the tunnel to drop');
    const second = await startEdge(port);
    await until(() => second.pool.size === 1, 'the tunnel back');
    expect((await call(second.relay, 'broker.test')).status).toBe(200);
  });

  it("keeps tokens and paths out of the edge's log and out of the bytes it relays", async () => {
    const { pool, relay } = await startEdge();
    startBroker(pool);
    await until(() => pool.size === 1, 'the tunnel');
    // A recording hop in front of the edge: every byte the edge receives from and sends to the runner.
    const captured: Buffer[] = [];
    const [host, port] = relay.address.split(':');
    const tap: TcpServer = createTcpServer((inbound) => {
      const out = connectTcp(Number(port), host);
      inbound.on('data', (c: Buffer) => captured.push(c));
      out.on('data', (c: Buffer) => captured.push(c));
      inbound.pipe(out).pipe(inbound);
      inbound.on('close', () => out.destroy());
      out.on('close', () => inbound.destroy());
    });
    await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
    started.push({ close: () => new Promise<void>((r) => tap.close(() => r())) });
    const tapAddress = `127.0.0.1:${(tap.address() as { port: number }).port}`;
    const answer = await call({ address: tapAddress, open: 0, close: async () => {} }, 'broker.test');
    expect(answer.json.body).toContain(TOKEN); // the broker did receive it
    await until(() => logLines.some((l) => l.includes('connection relayed')), 'the relay log line');
    const bytes = Buffer.concat(captured);
    expect(bytes.length).toBeGreaterThan(1000);
    for (const secret of [TOKEN, 'edge-test-secret-token', PATH, 'edge-secret-path', 'authorization'])
      for (const haystack of [bytes.toString('latin1'), logLines.join('')])
        expect(haystack).not.toContain(secret);
    // The one thing the edge may read: the server name in the clear ClientHello.
    expect(bytes.toString('latin1')).toContain('broker.test');
  });

  it('edge-only: a server bound to no port answers the streams, and holds them to its header timeout', async () => {
    const { pool, relay } = await startEdge();
    const unbound = serveUnbound(
      async (req, res) => {
        req.resume();
        await new Promise((r) => req.on('end', r));
        const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
        res.end(JSON.stringify({ name: 'unbound', peer, url: req.url, body: '' }));
      },
      { tls: brokerServing, requestTimeoutMs: 1_000 },
    );
    started.push({ close: () => unbound.close(0) });
    const { server } = unbound;
    if (!(server instanceof TlsServer)) throw new Error('an HTTPS server is a TLS server');
    expect(server.listening).toBe(false);
    expect(server.address()).toBeNull();
    startBroker(pool, brokerClient, edgeCa, { broker: server, gateway: brokerServer('g') });
    await until(() => pool.size === 1, 'the tunnel');
    const answer = await call(relay, 'broker.test');
    expect(answer.json).toMatchObject({ name: 'unbound', url: PATH, peer: answer.local });
    // A runner that never finishes its headers is answered 408 and cut (headersTimeout: 1 s), as at
    // a bound listener: Node's connection sweeps run for this server too.
    const [host, port] = relay.address.split(':');
    const slow = connectTls({ host, port: Number(port), servername: 'broker.test', ca: runnerCa.cert });
    let heard = '';
    slow.on('data', (c: Buffer) => (heard += c.toString()));
    slow.on('error', () => {});
    const closed = new Promise((r) => slow.on('close', r));
    slow.once('secureConnect', () => slow.write(`GET ${PATH} HTTP/1.1\r\nhost: broker.test\r\n`));
    started.push({ close: async () => void slow.destroy() });
    let done = false;
    void closed.then(() => (done = true));
    await until(() => done, 'the slow connection to be cut', 8_000);
    expect(heard).toMatch(/^HTTP\/1\.1 408/);
  });
});
