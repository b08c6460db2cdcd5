// What the HTTP parser refuses before any route: a header block over Node's 16 KiB limit (a long bearer
// token) is 400 with the contract's JSON error body, not Node's bare 431; Node's other answers stay.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { connect } from 'node:net';
import { listen, type RunningServer } from '../../../src/broker/net/server.js';
import { brokerRequest } from '../../../test/support/broker-request.js';

let server: RunningServer;
let routed = 0;

beforeAll(async () => {
  server = await listen(
    async (_req, res) => {
      routed += 1;
      res.writeHead(204).end();
    },
    { host: '127.0.0.1', port: 0, insecureHttp: true, requestTimeoutMs: 1_000 },
  );
});
afterAll(() => server.close(0));

/** Writes raw bytes and returns everything the server sends until it closes the connection. */
function raw(bytes: string): Promise<string> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
    socket.on('end', () => resolve(text));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

test('listening on port 0 reports the port it took', () => {
  expect(Number(new URL(server.url).port)).toBeGreaterThan(0);
});

test.each([
  ['a 20 KiB bearer token', { authorization: `Bearer ${'a'.repeat(20 * 1024)}` }],
  [
    '64 KiB of other headers',
    Object.fromEntries([...Array(64)].map((_, i) => [`x-h${i}`, 'v'.repeat(1024)])),
  ],
])('%s: 400 with the JSON error body, never reaching a route', async (_name, headers) => {
  const before = routed;
  const r = await brokerRequest<{ error: { code: string; message: string } }>(
    server.url,
    'DELETE',
    `/v1/grants/gha-${'0'.repeat(32)}`,
    { headers },
  );
  expect(r.status).toBe(400);
  expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(r.body).toEqual({ error: { code: 'ERR_BAD_REQUEST', message: 'malformed request' } });
  expect(routed).toBe(before);
});

test('headers just under the limit still reach the route', async () => {
  const r = await brokerRequest(server.url, 'GET', '/', {
    headers: { authorization: `Bearer ${'a'.repeat(15 * 1024)}` },
  });
  expect(r.status).toBe(204);
});

test("Node's own answers stay for other parser errors: a garbled request line 400, a stalled one 408", async () => {
  expect(await raw('NOT HTTP AT ALL\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  // Headers never finished: the request deadline (1 s here) ends it.
  expect(await raw('GET / HTTP/1.1\r\nhost: x\r\n')).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
});
