// A client that leaves while the gateway checks its token: nothing is forwarded for it. Its
// answer's 'close' has fired by the time the check ends, so a request made upstream then would
// stay open (and hold a pooled connection) until the grant ended. No cluster: the TokenReview is
// held by the test, the upstream pool records what it is asked.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'undici';
import { ConnectionGate } from '../../src/broker/gateway/connection-gate.js';
import { createGateway, type Gateway } from '../../src/broker/gateway/proxy.js';
import { LiveGrants } from '../../src/broker/gateway/live-grants.js';
import type { TokenReviewCache } from '../../src/broker/gateway/token-review-cache.js';
import { createMetrics } from '../../src/broker/metrics.js';
import { sleep } from '../../test/support/cluster.js';

const GRANT = 'gha-0123456789abcdef0123456789abcdef';
const NS = 'team-a';
const UID = 'uid-1';
const unsigned = (payload: object) =>
  `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
const TOKEN = unsigned({
  sub: `system:serviceaccount:${NS}:${GRANT}`,
  exp: Math.floor(Date.now() / 1000) + 3600,
  'kubernetes.io': { serviceaccount: { uid: UID } },
});

let server: Server;
let gateway: Gateway;
const dispatched: string[] = [];
let releaseReview!: () => void;
let reviewAsked!: () => void;
const asked = new Promise<void>((r) => (reviewAsked = r));

beforeAll(async () => {
  const table = new LiveGrants();
  table.upsertRecord({
    grantId: GRANT,
    namespace: NS,
    grantExpiresAt: Date.now() + 3_600_000,
    keepUntil: Infinity,
  });
  table.upsertGrant({
    uid: UID,
    grantId: GRANT,
    namespace: NS,
    annotatedExpiry: Date.now() + 3_600_000,
    run: {},
  });
  const reviews = {
    identify: async () => {
      reviewAsked();
      await new Promise<void>((r) => (releaseReview = r));
      return { uid: UID, namespace: NS, name: GRANT };
    },
  } as unknown as TokenReviewCache;
  const pool = {
    dispatch: (o: { path: string }) => {
      dispatched.push(o.path);
      return true;
    },
  } as unknown as Pool;
  gateway = createGateway({
    table,
    synced: () => true,
    reviews,
    credentials: { tokenFor: async () => 'upstream-credential' },
    namespaces: () => [NS],
    upstream: {
      lanes: { short: { pool, gate: new ConnectionGate(4) }, long: { pool, gate: new ConnectionGate(4) } },
      basePath: '',
      close: () => undefined,
    },
    audit: { record: () => undefined } as never,
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined } as never,
    metrics: createMetrics(),
  });
  server = createServer((req, res) => void gateway.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  gateway?.stop();
  await new Promise((r) => server?.close(r));
});

test('a client gone during the token check gets nothing forwarded, and no request stays open', async () => {
  const { port } = server.address() as AddressInfo;
  const req = request({
    host: '127.0.0.1',
    port,
    path: `/api/v1/namespaces/${NS}/configmaps?watch=1`,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  req.on('error', () => undefined);
  req.end();
  await asked;
  req.destroy();
  await sleep(100); // the server sees the connection close
  releaseReview();
  await sleep(100);
  expect(dispatched).toEqual([]);
  expect(gateway.openRequests()).toBe(0);
});
