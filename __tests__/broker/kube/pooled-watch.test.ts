// The broker's watches over its own connection (src/broker/kube/pooled-watch.ts) against a local
// HTTPS endpoint: events read from lines however the answer is cut into chunks (a last line without
// its newline too), the watch's query and the broker's credentials sent, and every way a watch ends
// reported once, with an error unless the server ended it (a refusal, a cut connection, no headers,
// silence, a line that is not JSON or never ends, a loop that throws, the caller's abort), since a
// clean end makes the loop go on from its version instead of listing afresh. Watches one after
// another, as the loops open them, share one TLS connection. The real API server's side: the
// gateway's grant table and role vetting in the cluster tests.
import { afterAll, beforeAll, beforeEach, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONNECTION_LIMITS, KubeConnection } from '../../../src/broker/kube/connection.js';
import { describeK8sError } from '../../../src/broker/kube/errors.js';
import { MAX_EVENT_CHARS, pooledWatcher } from '../../../src/broker/kube/pooled-watch.js';
import { OpenWatches, type Watcher } from '../../../src/broker/kube/watches.js';
import { waitFor } from '../../../test/support/cluster.js';
import { hotPathOver, scriptedKubeConfig } from '../../../test/support/scripted-api-server.js';
import { selfSignedCert } from '../../../test/support/tls.js';

const PATH = '/api/v1/namespaces/ns/serviceaccounts';
/** Short, so the silent watch's test fails it quickly. */
const INACTIVITY_MS = 300;

let server: Server;
let url: string;
let ca: Buffer;
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
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ca = tls.ca;
  connection = hotPathOver(url, ca).connection;
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

/**
 * Runs one watch to its end: the events it delivered and what `done` was told, listening on a
 * while after `done` for a second call.
 */
async function watchToEnd(
  query: Record<string, string | number | boolean | undefined> = {},
  options: { watcher?: Watcher; onEvent?: (name: string) => void } = {},
) {
  const events: [string, string][] = [];
  const ends: unknown[] = [];
  const watcher = options.watcher ?? pooledWatcher(connection, INACTIVITY_MS);
  await new Promise<void>((resolve) => {
    void watcher.watch(
      PATH,
      query,
      (type: string, object: { metadata: { name: string } }) => {
        events.push([type, object.metadata.name]);
        options.onEvent?.(object.metadata.name);
      },
      (err) => {
        ends.push(err);
        resolve();
      },
    );
  });
  await new Promise((r) => setTimeout(r, 50));
  return { events, ends };
}

/** The chunks the answer's body arrived in, counted beside the watcher's own reading. */
function countingChunks(): { watcher: Watcher; chunks: () => number } {
  let chunks = 0;
  const watcher = pooledWatcher(
    {
      stream: async (...args: Parameters<KubeConnection['stream']>) => {
        const answer = await connection.stream(...args);
        answer.body.on('data', () => (chunks += 1));
        return answer;
      },
    },
    INACTIVITY_MS,
  );
  return { watcher, chunks: () => chunks };
}

test('events arrive whole however the answer is cut, and the server ending the watch is no error', async () => {
  // "é" is two bytes in UTF-8: the cut between chunks falls inside it.
  const text = line('ADDED', 'a') + '\n' + line('MODIFIED', 'café') + line('DELETED', 'b');
  const bytes = Buffer.from(text);
  const cut = bytes.indexOf(Buffer.from('é')) + 1;
  const counted = countingChunks();
  // Each part is sent once the one before has reached the reader, so no two arrive as one.
  const read = (n: number) =>
    waitFor(`chunk ${n} read`, () => (counted.chunks() >= n ? true : undefined), 5_000, 5);
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(bytes.subarray(0, 5));
    void read(1)
      .then(() => res.write(bytes.subarray(5, cut)))
      .then(() => read(2))
      .then(() => res.end(bytes.subarray(cut)));
  };
  const { events, ends } = await watchToEnd(
    { labelSelector: 'a=b,c', resourceVersion: '42', limit: undefined },
    { watcher: counted.watcher },
  );
  expect(counted.chunks()).toBeGreaterThanOrEqual(3);
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
  // An error, so its loop does not take the abort for the server's end (Node's DOMException).
  expect((ends[0] as { name?: string }).name).toBe('AbortError');
});

test('watches opened one after another, as the loops open them, share one TLS connection', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(line('ADDED', 'a'));
  };
  await watchToEnd();
  const before = handshakes;
  // As the loops do it: the next watch opens as soon as the last one's end is known.
  const watches = new OpenWatches();
  const watcher = pooledWatcher(connection, INACTIVITY_MS);
  for (let i = 0; i < 5; i += 1) await watches.once(watcher, PATH, {}, () => undefined);
  expect(handshakes).toBe(before);
  expect(seen).toHaveLength(6);
});

test('a last line without its newline is delivered, and the end is clean', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(line('ADDED', 'a') + line('DELETED', 'ü').trimEnd());
  };
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([
    ['ADDED', 'a'],
    ['DELETED', 'ü'],
  ]);
  expect(ends).toEqual([undefined]);
});

test('a connection cut in the middle of the answer ends the watch with an error, not as the server ending it', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(line('ADDED', 'a') + '{"type":"DELE');
    setTimeout(() => res.socket?.destroy(), 20);
  };
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([['ADDED', 'a']]);
  expect(ends).toHaveLength(1);
  expect(ends[0]).toBeInstanceOf(Error);
});

test('a server that never answers ends the watch with an error after the call deadline', async () => {
  handle = () => undefined;
  const quick = new KubeConnection(scriptedKubeConfig(url, ca), { ...CONNECTION_LIMITS, callTimeoutMs: 300 });
  try {
    const { ends } = await watchToEnd({}, { watcher: pooledWatcher(quick, 60_000) });
    expect(ends).toHaveLength(1);
    expect(ends[0]).toBeInstanceOf(Error);
  } finally {
    quick.close();
    server.closeAllConnections();
  }
});

test('a loop that throws on an event ends its watch with that error; nothing after it is delivered', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(line('ADDED', 'a') + line('ADDED', 'boom') + line('ADDED', 'c'));
  };
  const { events, ends } = await watchToEnd(
    {},
    {
      onEvent: (name) => {
        if (name === 'boom') throw new Error('the loop failed');
      },
    },
  );
  expect(events.map(([, name]) => name)).toEqual(['a', 'boom']);
  expect(String(ends[0])).toContain('the loop failed');
  expect(ends).toHaveLength(1);
});

test('a line that never ends is given up past the longest event, with an error', async () => {
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(`{"type":"ADDED","object":"${'x'.repeat(MAX_EVENT_CHARS)}`);
  };
  const { events, ends } = await watchToEnd();
  expect(events).toEqual([]);
  expect(ends).toHaveLength(1);
  expect(String(ends[0])).toContain('longer than any object');
});
