// The broker's connection to the API server (src/broker/kube/connection.ts) against a local HTTPS
// endpoint: the hot path's answers parsed, errors shaped as client-node's so kube/errors.ts reads
// them, a deadline per call, the resend rules, idle connections closed, one pool shared with
// client-node's API objects, and credentials asked of the KubeConfig again at most every
// credentialsRecheckMs, so a rotated token or CA is used, by the hot path and the gateway's
// upstream alike.
// Connection reuse against the real API server is in __tests__/bench/connection-reuse.cluster.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { upstreamOf } from '../../../src/broker/gateway/upstream.js';
import { createK8sClients } from '../../../src/broker/kube/clients.js';
import {
  CONNECTION_LIMITS,
  KubeCallTimeoutError,
  KubeConnection,
} from '../../../src/broker/kube/connection.js';
import { jsonHotPath } from '../../../src/broker/kube/hot-path-api.js';
import {
  describeK8sError,
  isAlreadyExists,
  isNotFound,
  isRefused,
  statusCodeOf,
} from '../../../src/broker/kube/errors.js';
import { selfSignedCert } from '../../../test/support/tls.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let dir: string;
let server: Server;
let port: number;
let handle: Handler;
let handshakes = 0;
const clients: { close(): void }[] = [];
const certs: { a: ReturnType<typeof selfSignedCert>; b: ReturnType<typeof selfSignedCert> } = {} as never;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-lean-'));
  for (const which of ['a', 'b'] as const) {
    mkdirSync(join(dir, which));
    certs[which] = selfSignedCert(join(dir, which));
  }
  server = createServer(
    { cert: readFileSync(certs.a.certFile), key: readFileSync(certs.a.keyFile) },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res));
    },
  );
  server.on('secureConnection', () => (handshakes += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const status = (code: number, reason: string, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });

function answerWith(code: number, body: string): void {
  handle = (_req, _body, res) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(body);
  };
}

function tokenKubeConfig(serverPort = port): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: `https://127.0.0.1:${serverPort}`, caData: certs.a.ca.toString('base64') },
    ],
    users: [{ name: 'u', token: 'not-a-real-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

function leanClient(
  kc: KubeConfig,
  callTimeoutMs = 5_000,
  idleConnectionMs = 30_000,
  interceptors?: [],
): KubeConnection {
  const limits = { callTimeoutMs, idleConnectionMs, credentialsRecheckMs: 0 };
  const client = new KubeConnection(kc, limits, interceptors);
  clients.push(client);
  return client;
}

test('the JSON hot path serves HTTPS clusters without a proxy; the rest stays with client-node', () => {
  const kc = (cluster: { server: string; proxyUrl?: string; skipTLSVerify?: boolean }) => {
    const k = new KubeConfig();
    k.loadFromOptions({
      clusters: [{ name: 'c', skipTLSVerify: false, ...cluster }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return k;
  };
  expect(KubeConnection.supports(kc({ server: 'https://10.0.0.1:6443' }))).toBe(true);
  expect(KubeConnection.supports(kc({ server: 'https://10.0.0.1', proxyUrl: 'http://proxy:3128' }))).toBe(
    false,
  );
  expect(KubeConnection.supports(kc({ server: 'http://127.0.0.1:8080', skipTLSVerify: true }))).toBe(false);
});

describe('answers and errors', () => {
  test('a create sends its body as JSON with the bearer token and returns the parsed answer', async () => {
    let seen: { method?: string; url?: string; type?: string; auth?: string; body?: unknown } = {};
    handle = (req, body, res) => {
      seen = {
        method: req.method,
        url: req.url,
        type: req.headers['content-type'],
        auth: req.headers.authorization,
        body: JSON.parse(body),
      };
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ metadata: { name: 'g-1', uid: 'u-1' } }));
    };
    const api = jsonHotPath(leanClient(tokenKubeConfig()));
    const sa = await api.createNamespacedServiceAccount({
      namespace: 'team-a',
      body: { metadata: { name: 'g-1' }, automountServiceAccountToken: false },
    });
    expect(sa.metadata?.uid).toBe('u-1');
    expect(seen).toEqual({
      method: 'POST',
      url: '/api/v1/namespaces/team-a/serviceaccounts',
      type: 'application/json',
      auth: 'Bearer not-a-real-token',
      body: { metadata: { name: 'g-1' }, automountServiceAccountToken: false },
    });
  });

  test("a refusal is client-node's ApiException, read by errors.ts as before", async () => {
    const api = jsonHotPath(leanClient(tokenKubeConfig()));
    answerWith(404, status(404, 'NotFound', 'serviceaccounts "g-1" not found'));
    const notFound = await api.readNamespacedServiceAccount({ name: 'g-1', namespace: 'a' }).catch((e) => e);
    expect(notFound).toBeInstanceOf(ApiException);
    expect(isNotFound(notFound)).toBe(true);
    expect(describeK8sError(notFound)).toBe('HTTP 404: serviceaccounts "g-1" not found');

    answerWith(409, status(409, 'AlreadyExists', 'leases "g-1" already exists'));
    const conflict = await api
      .createNamespacedLease({ namespace: 'b', body: { metadata: { name: 'g-1' } } })
      .catch((e) => e);
    expect(isAlreadyExists(conflict)).toBe(true);
    expect(isNotFound(conflict)).toBe(false);

    answerWith(403, status(403, 'Forbidden', 'roles is forbidden: attempting to grant RBAC permissions'));
    const refused = await api.createNamespacedRole({ namespace: 'b', body: {} }).catch((e) => e);
    expect(isRefused(refused)).toBe(true);
    expect(describeK8sError(refused)).toBe(
      'HTTP 403: roles is forbidden: attempting to grant RBAC permissions',
    );

    answerWith(500, 'not json at all');
    const broken = await api.deleteNamespacedRole({ name: 'r', namespace: 'b' }).catch((e) => e);
    expect(statusCodeOf(broken)).toBe(500);
    expect(describeK8sError(broken)).toBe('HTTP 500: not json at all');
  });

  test('a DELETE carries its DeleteOptions as the body', async () => {
    let seen: { method?: string; url?: string; body?: unknown } = {};
    handle = (req, body, res) => {
      seen = { method: req.method, url: req.url, body: JSON.parse(body) };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    await jsonHotPath(leanClient(tokenKubeConfig())).deleteNamespacedServiceAccount({
      name: 'g-1',
      namespace: 'a',
      body: { preconditions: { uid: 'u-1' }, propagationPolicy: 'Background' },
    });
    expect(seen).toEqual({
      method: 'DELETE',
      url: '/api/v1/namespaces/a/serviceaccounts/g-1',
      body: { preconditions: { uid: 'u-1' }, propagationPolicy: 'Background' },
    });
  });
});

describe('deadline', () => {
  test('a call the server never answers fails at its deadline and its connection is closed', async () => {
    let closed = false;
    handle = (req) => req.socket.on('close', () => (closed = true)); // never answers
    const started = Date.now();
    const err = await leanClient(tokenKubeConfig(), 300)
      .request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1')
      .catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(KubeCallTimeoutError);
    expect(statusCodeOf(err)).toBeUndefined(); // a 503 for the caller, never mistaken for a status
    expect(elapsed).toBeGreaterThanOrEqual(290);
    // A bound against hangs only: the deadline is 300 ms.
    expect(elapsed).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
  });
});

describe('deadline, before a connection and after the answer began', () => {
  test('a call still waiting for its connection (a handshake that never ends) fails at its deadline', async () => {
    // Accepts TCP connections and never answers the TLS handshake.
    const held: Socket[] = [];
    const silent = createTcpServer((socket) => held.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const started = Date.now();
      const err = await leanClient(tokenKubeConfig((silent.address() as AddressInfo).port), 300)
        .request('POST', '/api/v1/namespaces/a/serviceaccounts', { metadata: { name: 'g-1' } })
        .catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(KubeCallTimeoutError);
      expect(elapsed).toBeGreaterThanOrEqual(290);
      // At its deadline, not at undici's connect timeout (10 s).
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('an answer whose body stops half-way fails at the deadline', async () => {
    handle = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"metadata":'); // and nothing more
    };
    const started = Date.now();
    const err = await leanClient(tokenKubeConfig(), 300)
      .request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeCallTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  test('a GET whose connection fails after its answer began is not sent again', async () => {
    let requests = 0;
    handle = (_req, _body, res) => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"metadata":', () => res.socket?.destroy());
    };
    const err = await leanClient(tokenKubeConfig())
      .request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(KubeCallTimeoutError);
    // Sent again only when its connection failed before any answer: this one had begun.
    expect(requests).toBe(1);
  });
});

describe('idle connections', () => {
  test('a connection is kept for the next call, and closed once idle for idleConnectionMs', async () => {
    answerWith(200, '{}');
    const client = leanClient(tokenKubeConfig(), 5_000, 300);
    const before = handshakes;
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    expect(handshakes - before).toBe(1);
    await new Promise((r) => setTimeout(r, 800));
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    expect(handshakes - before).toBe(2);
  });
});

describe('one pool for every caller of the connection', () => {
  test('DELETEs with a body keep their connection (undici closes it unless told not to)', async () => {
    answerWith(200, '{}');
    const deletes = async (client: KubeConnection) => {
      const before = handshakes;
      for (let i = 0; i < 3; i += 1)
        await client.request('DELETE', '/api/v1/namespaces/a/serviceaccounts/g-1', {
          propagationPolicy: 'Background',
        });
      return handshakes - before;
    };
    expect(await deletes(leanClient(tokenKubeConfig()))).toBe(1);
    // The control: the same connection without the interceptor, one handshake per DELETE.
    expect(await deletes(leanClient(tokenKubeConfig(), 5_000, 30_000, []))).toBe(3);
  });

  test("client-node's API objects share the hot path's connections and its deadline", async () => {
    answerWith(200, JSON.stringify({ metadata: { name: 'g-1', uid: 'u-1' } }));
    const kc = tokenKubeConfig();
    const k8s = createK8sClients(kc, leanClient(kc, 300));
    const read = { name: 'g-1', namespace: 'a' };
    const before = handshakes;
    // undici hands a connection back one event-loop turn after its answer; the hot path waits for
    // it (connection.ts), client-node's fetch does not, so the test lets that turn pass after it.
    const turn = () => new Promise((r) => setImmediate(r));
    expect((await k8s.core.readNamespacedServiceAccount(read)).metadata?.uid).toBe('u-1');
    await turn();
    expect((await k8s.hotPath.readNamespacedServiceAccount(read)).metadata?.uid).toBe('u-1');
    expect((await k8s.core.readNamespacedServiceAccount(read)).metadata?.uid).toBe('u-1');
    await turn();
    expect((await k8s.hotPath.readNamespacedServiceAccount(read)).metadata?.uid).toBe('u-1');
    expect(handshakes - before).toBe(1);

    handle = () => undefined; // never answers
    const started = Date.now();
    const err = await k8s.core.readNamespacedServiceAccount(read).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toMatchObject({ name: 'TimeoutError' });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(10_000); // a bound against hangs only: the deadline is 300 ms
  });
});

describe('a kept-alive connection closed under a call', () => {
  /** An endpoint that, after dropNext(), drops the next request's connection without answering. */
  function droppingEndpoint(): { count: () => number; dropNext: () => void } {
    let requests = 0;
    let drop = false;
    handle = (req, _body, res) => {
      requests += 1;
      if (drop) {
        drop = false;
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    return { count: () => requests, dropNext: () => (drop = true) };
  }

  test('a GET, or a DELETE pinned by uid, is sent once more on a new connection; a POST or a DELETE by name is not', async () => {
    const endpoint = droppingEndpoint();
    const client = leanClient(tokenKubeConfig());
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    let before = endpoint.count();
    endpoint.dropNext();
    await expect(client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1')).resolves.toEqual({});
    expect(endpoint.count() - before).toBe(2);

    before = endpoint.count();
    endpoint.dropNext();
    const err = await client
      .request('POST', '/api/v1/namespaces/a/serviceaccounts', { metadata: { name: 'g-2' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(statusCodeOf(err)).toBeUndefined();
    expect(endpoint.count() - before).toBe(1);

    // A DELETE pinned by a uid precondition is sent again; one by name alone is not: had the first
    // been carried out, the second could delete an object another replica made since.
    const path = '/apis/coordination.k8s.io/v1/namespaces/b/leases/g-3';
    await client.request('GET', path); // a kept-alive connection again, for the next call to reuse
    before = endpoint.count();
    endpoint.dropNext();
    await expect(
      client.request('DELETE', path, { preconditions: { uid: 'uid-g-3' }, propagationPolicy: 'Background' }),
    ).resolves.toEqual({});
    expect(endpoint.count() - before).toBe(2);
    await client.request('GET', path);
    before = endpoint.count();
    endpoint.dropNext();
    const byName = await client
      .request('DELETE', path, { propagationPolicy: 'Background' })
      .catch((e: unknown) => e);
    expect(byName).toBeInstanceOf(Error);
    expect(endpoint.count() - before).toBe(1);
  });
});

describe('rotated credentials (the in-cluster identity)', () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  let prefix: string;
  const saDir = () => join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');

  beforeAll(() => {
    prefix = join(dir, 'pod');
    mkdirSync(saDir(), { recursive: true });
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    process.env.KUBERNETES_SERVICE_PORT = String(port);
  });

  afterAll(() => {
    process.env.KUBERNETES_SERVICE_HOST = saved.host;
    process.env.KUBERNETES_SERVICE_PORT = saved.port;
    if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
    if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
    jest.useRealTimers();
  });

  function inCluster(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromCluster(prefix);
    return kc;
  }

  test('a rotated token file is sent once client-node re-reads it (every minute)', async () => {
    writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
    writeFileSync(join(saDir(), 'token'), 'token-one');
    const seen: (string | undefined)[] = [];
    handle = (req, _body, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    const client = leanClient(inCluster());
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    writeFileSync(join(saDir(), 'token'), 'token-two');
    // Only the clock is faked: the sockets and the deadline run on real timers.
    jest.useFakeTimers({
      doNotFake: [
        'setTimeout',
        'clearTimeout',
        'setImmediate',
        'nextTick',
        'hrtime',
        'queueMicrotask',
        'performance',
      ],
    });
    jest.setSystemTime(Date.now() + 61_000);
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    jest.useRealTimers();
    expect(seen).toEqual(['Bearer token-one', 'Bearer token-two']);
  });

  test('a rotated CA file is trusted from the next call, on a new connection', async () => {
    writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
    writeFileSync(join(saDir(), 'token'), 'token-one');
    answerWith(200, '{}');
    const client = leanClient(inCluster());
    await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
    // The server moves to certificate b; the pod's CA file follows.
    server.setSecureContext({ cert: readFileSync(certs.b.certFile), key: readFileSync(certs.b.keyFile) });
    try {
      writeFileSync(join(saDir(), 'ca.crt'), certs.b.ca);
      const before = handshakes;
      await client.request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1');
      expect(handshakes).toBe(before + 1);
      // The control: a client still trusting only a cannot reach the server now.
      writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
      const stale = await leanClient(inCluster())
        .request('GET', '/api/v1/namespaces/a/serviceaccounts/g-1')
        .catch((e: unknown) => e);
      expect(stale).toBeInstanceOf(Error);
      expect(statusCodeOf(stale)).toBeUndefined();
    } finally {
      server.setSecureContext({ cert: readFileSync(certs.a.certFile), key: readFileSync(certs.a.keyFile) });
    }
  });
  test.each([
    ['once credentialsRecheckMs has passed', (clock: number) => clock + 1],
    ['when the clock is stepped back', (clock: number) => clock - 60_000],
  ])('credentials are read again %s, not on every call', async (_when, step) => {
    writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
    writeFileSync(join(saDir(), 'token'), 'token-one');
    answerWith(200, '{}');
    const path = '/api/v1/namespaces/a/serviceaccounts/g-1';
    let clock = 1_000_000;
    const connection = new KubeConnection(
      inCluster(),
      { ...CONNECTION_LIMITS, credentialsRecheckMs: 1_000 },
      undefined,
      () => clock,
    );
    clients.push(connection);
    await connection.request('GET', path);
    server.setSecureContext({ cert: readFileSync(certs.b.certFile), key: readFileSync(certs.b.keyFile) });
    server.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    try {
      writeFileSync(join(saDir(), 'ca.crt'), certs.b.ca);
      // Within the recheck interval the CA read before is still the one trusted: b is refused.
      clock += 999;
      const early = await connection.request('GET', path).catch((e: unknown) => e);
      expect(early).toBeInstanceOf(Error);
      expect(String((early as Error).cause ?? early)).toMatch(/self[- ]signed/i);
      // Then it is read again, and the call goes through on a new connection.
      clock = step(clock);
      const before = handshakes;
      await expect(connection.request('GET', path)).resolves.toEqual({});
      expect(handshakes).toBe(before + 1);
    } finally {
      server.setSecureContext({ cert: readFileSync(certs.a.certFile), key: readFileSync(certs.a.keyFile) });
    }
  });

  test('a 401, to a call or a watch, makes the next call ask the kubeconfig for its credentials again', async () => {
    writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
    writeFileSync(join(saDir(), 'token'), 'token-one');
    const kc = inCluster();
    const asked = jest.spyOn(kc, 'applyToHTTPSOptions');
    const connection = new KubeConnection(kc, CONNECTION_LIMITS, undefined, () => 1_000_000);
    clients.push(connection);
    const path = '/api/v1/namespaces/a/serviceaccounts/g-1';
    answerWith(200, '{}');
    await connection.request('GET', path);
    await connection.request('GET', path);
    expect(asked).toHaveBeenCalledTimes(1); // the clock stands still: within the interval
    answerWith(401, status(401, 'Unauthorized', 'Unauthorized'));
    await expect(connection.request('GET', path)).rejects.toBeInstanceOf(ApiException);
    answerWith(200, '{}');
    await connection.request('GET', path);
    expect(asked).toHaveBeenCalledTimes(2);
    // The same for a watch's answer (pooled-watch.ts reads its status).
    answerWith(401, status(401, 'Unauthorized', 'Unauthorized'));
    const watch = await connection.stream(`${path}?watch=1`, AbortSignal.timeout(5_000), 5_000);
    expect(watch.statusCode).toBe(401);
    await watch.body.text();
    answerWith(200, '{}');
    await connection.request('GET', path);
    expect(asked).toHaveBeenCalledTimes(3);
  });

  test('a rotated CA file reaches the hot path and the gateway alike, from the next call', async () => {
    writeFileSync(join(saDir(), 'ca.crt'), certs.a.ca);
    writeFileSync(join(saDir(), 'token'), 'token-one');
    answerWith(200, '{}');
    const path = '/api/v1/namespaces/a/serviceaccounts/g-1';
    const connection = leanClient(inCluster());
    const upstream = upstreamOf(connection, { short: 1, long: 1 });
    clients.push(upstream);
    // The control: a gateway that read the CA once, at start (as it did before connection.ts).
    const readOnce = new KubeConnection(inCluster(), {
      ...CONNECTION_LIMITS,
      credentialsRecheckMs: Number.POSITIVE_INFINITY,
    });
    const staleUpstream = upstreamOf(readOnce, { short: 1, long: 1 });
    clients.push(staleUpstream);
    const forward = async (u: typeof upstream) => {
      const res = await u.lanes.short.pool.request({ method: 'GET', path: `${u.basePath}${path}` });
      await res.body.text();
      return res.statusCode;
    };
    await connection.request('GET', path);
    expect(await forward(upstream)).toBe(200);
    expect(await forward(staleUpstream)).toBe(200);

    // The server moves to certificate b and drops its idle connections; the pod's CA file follows.
    server.setSecureContext({ cert: readFileSync(certs.b.certFile), key: readFileSync(certs.b.keyFile) });
    server.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    try {
      writeFileSync(join(saDir(), 'ca.crt'), certs.b.ca);
      const before = handshakes;
      await expect(connection.request('GET', path)).resolves.toEqual({});
      expect(await forward(upstream)).toBe(200);
      expect(handshakes).toBe(before + 2);
      const stale = await forward(staleUpstream).catch((e: unknown) => e);
      expect(stale).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }); // b is not trusted
    } finally {
      server.setSecureContext({ cert: readFileSync(certs.a.certFile), key: readFileSync(certs.a.keyFile) });
    }
  });
});
