// Gateway fairness and call endings without a cluster: the caps per grant and per repository
// (429 with Retry-After), the two upstream lanes with a bounded wait (503), the Audit-ID the
// gateway sets on every call, and what a grant's end does to its calls in flight. The API server
// is a local HTTP server that records what reaches it; the same behaviour against the real API
// server is in gateway-fairness.cluster.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { CallEnding } from '../../src/broker/gateway/call-ending.js';
import { ConnectionGate } from '../../src/broker/gateway/connection-gate.js';
import { GATEWAY_LIMIT_DEFAULTS, type GatewayLimits } from '../../src/broker/config/broker-config.js';
import { ConcurrencyCaps } from '../../src/broker/gateway/fairness.js';
import { LiveGrants } from '../../src/broker/gateway/live-grants.js';
import { createGateway, type Gateway } from '../../src/broker/gateway/proxy.js';
import type { TokenReviewCache } from '../../src/broker/gateway/token-review-cache.js';
import { upstreamOf, type Upstream } from '../../src/broker/gateway/upstream.js';
import { KubeConnection } from '../../src/broker/kube/connection.js';
import { createMetrics } from '../../src/broker/metrics.js';
import { sleep, waitFor } from '../../test/support/cluster.js';

describe('ConcurrencyCaps', () => {
  const limits = {
    ...GATEWAY_LIMIT_DEFAULTS,
    requestsPerGrant: 2,
    requestsPerRepository: 3,
    longRunningPerGrant: 1,
  };

  test('per grant and per repository, short and long counted apart, released once', () => {
    const caps = new ConcurrencyCaps(limits);
    const a = { uid: 'a', repositoryId: 'r' };
    const b = { uid: 'b', repositoryId: 'r' };
    const a1 = caps.take(a, 'short');
    const a2 = caps.take(a, 'short');
    expect(typeof a1).toBe('function');
    expect(typeof a2).toBe('function');
    expect(caps.take(a, 'short')).toMatchObject({
      status: 429,
      reason: 'request_limit',
      retryAfterSeconds: 1,
    });
    // The long-running cap is its own.
    const w = caps.take(a, 'long');
    expect(typeof w).toBe('function');
    expect(caps.take(a, 'long')).toMatchObject({ status: 429, reason: 'long_running_limit' });
    // B has room of its own, but the repository has one place left.
    const b1 = caps.take(b, 'short');
    expect(typeof b1).toBe('function');
    expect(caps.take(b, 'short')).toMatchObject({ reason: 'request_limit', message: /repository/ });
    for (const release of [a1, a2, w, b1]) if (typeof release === 'function') release();
    if (typeof a1 === 'function') a1(); // twice is once
    expect(caps.size).toBe(0);
  });
});

describe('ConnectionGate', () => {
  test('first come first served, a bounded wait, a cancelled wait leaves the queue', async () => {
    const queued: number[] = [];
    const gate = new ConnectionGate(1, (n) => queued.push(n));
    const first = await gate.acquire(1000);
    if (!('release' in first)) throw new Error('no connection');
    const timedOut = gate.acquire(50);
    const stop = new AbortController();
    const cancelled = gate.acquire(10_000, stop.signal);
    const third = gate.acquire(10_000);
    expect(await timedOut).toEqual({ refused: 'timeout' });
    stop.abort();
    expect(await cancelled).toEqual({ refused: 'cancelled' });
    first.release();
    const got = await third;
    expect('release' in got).toBe(true);
    expect(gate.used).toBe(1);
    if ('release' in got) got.release();
    expect(gate.used).toBe(0);
    expect(queued).toEqual([1, 2, 3, 2, 1, 0]);
  });
});

describe('CallEnding', () => {
  test('not sent: never sent; long-running: cut once answered; short: finishes within the grace', async () => {
    const cuts: string[] = [];
    const unsent = new CallEnding(false, () => cuts.push('unsent'));
    expect(unsent.grantEnded()).toBe('not-sent');

    const watch = new CallEnding(true, () => cuts.push('watch'));
    watch.markSent();
    expect(watch.grantEnded()).toBe('finishing');
    watch.markAnswered();
    expect(cuts).toEqual(['watch']);

    const write = new CallEnding(false, () => cuts.push('write'), 50);
    write.markSent();
    expect(write.grantEnded()).toBe('finishing');
    write.markAnswered();
    expect(cuts).toEqual(['watch']);
    await sleep(80);
    expect(cuts).toEqual(['watch', 'write']);
    const done = new CallEnding(false, () => cuts.push('done'), 20);
    done.markSent();
    done.grantEnded();
    done.done();
    await sleep(40);
    expect(cuts).toEqual(['watch', 'write']);
  });
});

// ---- The gateway in front of a recording upstream ----

const NS = 'team-a';
const REPO = '123';
const grantIdOf = (n: number) => `gha-${n.toString(16).padStart(32, '0')}`;
const unsigned = (payload: object) =>
  `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
const tokenOf = (n: number) =>
  unsigned({
    sub: `system:serviceaccount:${NS}:${grantIdOf(n)}`,
    exp: Math.floor(Date.now() / 1000) + 3600,
    'kubernetes.io': { serviceaccount: { uid: `uid-${n}` } },
  });

let upstreamServer: Server;
/** What reached the upstream: method, path and the Audit-ID it carried. */
const reached: { path: string; auditId: string }[] = [];
/** Answers held back by the test (a slow write). */
const held: ServerResponse[] = [];
let table: LiveGrants;
let gateway: Gateway;
let gatewayServer: Server;
let upstream: Upstream;
const lines: Record<string, unknown>[] = [];
const limits: GatewayLimits = {
  ...GATEWAY_LIMIT_DEFAULTS,
  longRunningPerGrant: 2,
  longRunningPerRepository: 3,
  longRunningConnections: 3,
  upstreamConnections: 4,
  upstreamWaitMs: 200,
};

function addGrant(n: number, repositoryId = REPO) {
  const expiry = Date.now() + 3_600_000;
  table.upsertRecord({ grantId: grantIdOf(n), namespace: NS, grantExpiresAt: expiry, keepUntil: Infinity });
  table.upsertGrant({
    uid: `uid-${n}`,
    grantId: grantIdOf(n),
    namespace: NS,
    annotatedExpiry: expiry,
    run: { repository_id: repositoryId, run_id: `run-${n}` },
  });
}

beforeAll(async () => {
  upstreamServer = createServer((req: IncomingMessage, res: ServerResponse) => {
    reached.push({ path: req.url ?? '', auditId: String(req.headers['audit-id']) });
    res.setHeader('audit-id', String(req.headers['audit-id']));
    req.resume();
    if ((req.url ?? '').includes('watch=1')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      return; // held open, as a watch
    }
    if ((req.url ?? '').includes('hold')) {
      held.push(res);
      return;
    }
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}` }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  });
  table = new LiveGrants();
  for (const n of [1, 2, 3, 4, 5]) addGrant(n, n === 3 ? 'other-repo' : REPO);
  upstream = upstreamOf(new KubeConnection(kc), {
    short: limits.upstreamConnections,
    long: limits.longRunningConnections,
  });
  gateway = createGateway({
    table,
    synced: () => true,
    reviews: {
      identify: async (token: string) => {
        const n = Number(/uid-(\d+)/.exec(Buffer.from(token.split('.')[1]!, 'base64url').toString())![1]);
        return { uid: `uid-${n}`, namespace: NS, name: grantIdOf(n) };
      },
    } as unknown as TokenReviewCache,
    namespaces: () => [NS],
    upstream,
    credentials: { tokenFor: async () => 'upstream-credential' },
    audit: { record: (e) => void lines.push(e as Record<string, unknown>) },
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined } as never,
    metrics: createMetrics(),
    limits,
  });
  gatewayServer = createServer((req, res) => void gateway.handle(req, res));
  gatewayServer.on('connect', (req, socket) => void gateway.handleConnect(req, socket));
  await new Promise<void>((r) => gatewayServer.listen(0, '127.0.0.1', r));
});

afterEach(() => {
  for (const res of held.splice(0)) res.destroy();
});

afterAll(async () => {
  gateway?.stop();
  upstream?.close();
  await new Promise((r) => gatewayServer?.close(r));
  upstreamServer?.closeAllConnections();
  await new Promise((r) => upstreamServer?.close(r));
});

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Promise<string>;
  close: () => void;
}

function call(n: number, path: string, method = 'GET', body?: string): Promise<Answer> {
  const { port } = gatewayServer.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        agent: false,
        headers: { authorization: `Bearer ${tokenOf(n)}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const body = new Promise<string>((r) => {
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => r(Buffer.concat(chunks).toString()));
          res.on('close', () => r(Buffer.concat(chunks).toString()));
          res.on('error', () => undefined);
        });
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, close: () => req.destroy() });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
const watchPath = `/api/v1/namespaces/${NS}/configmaps?watch=1`;
const listPath = `/api/v1/namespaces/${NS}/configmaps`;

describe('the gateway', () => {
  test("a grant at its cap of watches gets 429 with Retry-After; another grant's GET goes through at once", async () => {
    const watches = [await call(1, watchPath), await call(1, watchPath)];
    expect(watches.map((w) => w.status)).toEqual([200, 200]);
    const third = await call(1, watchPath);
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBe('1');
    expect(JSON.parse(await third.body)).toMatchObject({
      code: 429,
      reason: 'TooManyRequests',
      details: { retryAfterSeconds: 1 },
    });
    expect(lines.find((l) => l.reason === 'long_running_limit')).toMatchObject({
      action: 'denial',
      grantId: grantIdOf(1),
      claims: { repository_id: REPO, run_id: 'run-1' },
      lane: 'long',
    });
    // Grant 2 of the same repository: one place left under the repository's cap of 3.
    const other = await call(2, watchPath);
    expect(other.status).toBe(200);
    expect((await call(2, watchPath)).status).toBe(429);
    // The long lane (3 connections) is full now: grant 3 (another repository) waits, then 503.
    const busy = await call(3, watchPath);
    expect(busy.status).toBe(503);
    expect(lines.filter((l) => l.reason === 'upstream_busy')).toHaveLength(1);
    // Short calls have their own connections and never wait behind the watches.
    const started = Date.now();
    const get = await call(3, listPath);
    expect(get.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(limits.upstreamWaitMs);
    for (const w of [...watches, other]) w.close();
    await waitFor('the watches to end', () => (gateway.openRequests() === 0 ? true : undefined));
    expect((await call(1, watchPath)).status).toBe(200);
  });

  test('every forwarded call carries the Audit-ID its line records', async () => {
    const before = reached.length;
    await (
      await call(4, listPath)
    ).body;
    const line = await waitFor('the line', () =>
      lines.find((l) => l.action === 'gateway' && l.grantId === grantIdOf(4) && l.verb === 'list'),
    );
    expect(reached.slice(before)).toEqual([{ path: listPath, auditId: line.apiAuditId }]);
    expect(line.apiAuditId).toBe(line.requestId);
  });

  test("at a grant's end a sent write completes with its real status, a watch is cut, a waiting call is never sent", async () => {
    // Fill the short lane (4) with held calls, so that grant 5's next call waits for a connection.
    const write = call(5, `${listPath}?hold=1`, 'POST', '{}');
    const watch = await call(5, `${watchPath}&x=5`);
    await waitFor('the write to reach the upstream', () => (held.length === 1 ? true : undefined));
    // Their answers are held: the calls stay open (not awaited), each holding a connection.
    for (let i = 0; i < 3; i += 1) void call(2, `${listPath}?hold=2`).catch(() => undefined);
    await waitFor('the lane full', () => (held.length === 4 ? true : undefined));
    const waiting = call(5, listPath);
    await sleep(50);
    const sentBefore = reached.length;
    table.forget(NS, grantIdOf(5));
    // The waiting call: refused as the grant is gone, never reaching the upstream.
    const refused = await waiting;
    expect(refused.status).toBe(401);
    // The watch: cut.
    await watch.body;
    // The write: its answer still comes, with the upstream's status.
    const writeHeld = held[0]!;
    writeHeld.writeHead(201, { 'content-type': 'application/json', 'audit-id': 'x' });
    writeHeld.end('{"kind":"ConfigMap"}');
    const written = await write;
    expect(written.status).toBe(201);
    expect(await written.body).toBe('{"kind":"ConfigMap"}');
    const mine = await waitFor('two call lines', () => {
      const found = lines.filter((l) => l.grantId === grantIdOf(5) && l.action === 'gateway');
      return found.length === 2 ? found : undefined;
    });
    expect(reached.length).toBe(sentBefore);
    const byVerb = Object.fromEntries(mine.map((l) => [l.verb, l]));
    expect(byVerb.create).toMatchObject({ status: 201, apiAuditId: 'x' });
    expect(byVerb.create).not.toHaveProperty('incomplete');
    expect(byVerb.watch).toMatchObject({ status: 200, incomplete: 'grant ended' });
    // The call that waited for a connection was never forwarded: a refusal line, naming its run.
    expect(lines.filter((l) => l.grantId === grantIdOf(5) && l.action === 'denial')).toEqual([
      expect.objectContaining({ reason: 'grant_not_live', claims: { repository_id: REPO, run_id: 'run-5' } }),
    ]);
  });

  test('CONNECT gets its 400', async () => {
    const { port } = gatewayServer.address() as AddressInfo;
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'CONNECT', path: 'kubernetes.default.svc:443' });
      req.on('connect', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
    expect(lines.find((l) => l.action === 'denial' && l.reason === 'path_refused')).toBeDefined();
  });
});
