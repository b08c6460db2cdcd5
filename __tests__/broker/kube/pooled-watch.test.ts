// The broker's watches over its own connection (src/broker/kube/pooled-watch.ts) against a local
// HTTPS endpoint: events read from lines however the answer is cut into chunks, the watch's query
// and the broker's credentials sent, every way a watch ends reported once (the server's end, a
// refusal, a line that is not JSON, the caller's abort, silence), and watches one after another on
// one TLS connection, which is why they do not go through client-node's Watch. The real API
// server's side: the gateway's grant table and role vetting in the cluster tests.
import { afterAll, beforeAll, beforeEach, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConnection } from '../../../src/broker/kube/connection.js';
import { describeK8sError } from '../../../src/broker/kube/errors.js';
import { pooledWatcher } from '../../../src/broker/kube/pooled-watch.js';
import { hotPathOver } from '../../../test/support/scripted-api-server.js';
import { selfSignedCert } from '../../../test/support/tls.js';

const PATH = '/api/v1/namespaces/ns/serviceaccounts';
/** Short, so the silent watch's test fails it quickly. */
const INACTIVITY_MS = 300;

let server: Server;
let connection: KubeConnection;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
let handshakes = 0;
const seen: { url: string; authorization: string | undefined }[] = [];

beforeAll(async () => {
  const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'k8s-ea-watch-')));
  server = createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    handle(req, res);
  });
  server.on('secureConnection', () => (handshakes += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  connection = hotPathOver(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, tls.ca).connection;
});

afterAll(async () => {
  connection.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  seen.length = 0;
});

const line = (type: string, name: string) => `${JSON.stringify({ type, object: { metadata: { name } } })}\n`;

/** Runs one watch to its end: the events it delivered and what `done` was told (and how often). */
async function watchToEnd(query: Record<string, string | number | boolean | undefined> = {}) {
  const events: [string, string][] = [];
  const ends: unknown[] = [];
  const ended = new Promise<void>((resolve) => {
    void pooledWatcher(connection, INACTIVITY_MS).watch(
      PATH,
      query,
      (type: string, object: { metadata: { name: string } }) => events.push([type, object.metadata.name]),
      (err) => {
        ends.push(err);
        resolve();
      },
    );
  });
  await ended;
  // A second call of `done` would come after the first, e.g. from the connection's close.
  await new Promise((r) => setTimeout(r, 50));
  return { events, ends };
}

test('events arrive whole however the answer is cut, and the server ending the watch is no error', async () => {
  // "é" is two bytes in UTF-8: the cut between chunks falls inside it.
  const text = line('ADDED', 'a') + '\n' + line('MODIFIED', 'café') + line('DELETED', 'b');
  const bytes = Buffer.from(text);
  const cut = bytes.indexOf(Buffer.from('é')) + 1;
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(bytes.subarray(0, 5));
    setTimeout(() => res.write(bytes.subarray(5, cut)), 10);
    setTimeout(() => res.end(bytes.subarray(cut)), 20);
  };
  const { events, ends } = await watchToEnd({
    labelSelector: 'a=b,c',
    resourceVersion: '42',
    limit: undefined,
  });
  expect(events).toEqual([
    ['ADDED', 'a'],
    ['MODIFIED', 'café'],
    ['DELETED', 'b'],
  ]);
  expect(ends).toEqual([undefined]);
  const query = new URLSearchParams(seen[0]!.url.split('?')[1]);
  expect(Object.fromEntries(query)).toEqual({ watch: 'true', labelSelector: 'a=b,c', resourceVersion: '42' });
  expect(seen[0]!.authorization).toBe('Bearer scripted-broker-token');
});

test("a refused watch ends with the API server's status and message", async () => {
  handle = (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code: 403, message: 'cannot watch serviceaccounts' }));
  };
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([]);
  expect(ends).toHaveLength(1);
  expect(describeK8sError(ends[0])).toBe('HTTP 403: cannot watch serviceaccounts');
});

test('a line that is not JSON ends the watch with an error, and nothing after it is delivered', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(line('ADDED', 'a') + '{"type": "ADDED", "obj\n' + line('ADDED', 'b'));
  };
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([['ADDED', 'a']]);
  expect(ends).toHaveLength(1);
  expect(String(ends[0])).toContain('not JSON');
});

test('a watch that stays silent past the inactivity bound ends with an error', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(line('ADDED', 'a'));
  };
  const started = Date.now();
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([['ADDED', 'a']]);
  expect(ends).toHaveLength(1);
  expect(ends[0]).toBeInstanceOf(Error);
  expect(Date.now() - started).toBeGreaterThanOrEqual(INACTIVITY_MS - 50);
});

test('the returned controller ends the watch: done once, and the server sees the request closed', async () => {
  let closed!: () => void;
  const serverSawClose = new Promise<void>((r) => (closed = r));
  handle = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(line('ADDED', 'a'));
    req.on('close', closed);
  };
  const ends: unknown[] = [];
  let first!: () => void;
  const delivered = new Promise<void>((r) => (first = r));
  const controller = await pooledWatcher(connection, 60_000).watch(
    PATH,
    {},
    () => first(),
    (err) => ends.push(err),
  );
  await delivered;
  controller.abort();
  await serverSawClose;
  await new Promise((r) => setTimeout(r, 50));
  expect(ends).toHaveLength(1);
});

test('watches one after another share one TLS connection', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(line('ADDED', 'a'));
  };
  await watchToEnd();
  const before = handshakes;
  for (let i = 0; i < 3; i += 1) expect((await watchToEnd()).ends).toEqual([undefined]);
  expect(handshakes).toBe(before);
  expect(seen).toHaveLength(4);
});
