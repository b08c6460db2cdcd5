// A client that stops reading: the gateway passes the API server's answer on only as fast as the
// client takes it (reading from the API server paused while the client's socket is full, resumed
// when it drains), and the whole answer arrives intact once the client reads again.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { request as httpsRequest } from 'node:https';
import { waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { gatewayRequest } from './support/gateway-client.js';
import { deployerGrant } from './support/gateway-grant.js';
import { untilGatewayAccepts } from './support/gateway-counts.js';

let env: BrokerEnv;
let broker: InProcessBroker;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['gw-slow'], policy: { rules: [{ roles: ['deployer'] }] } });
  broker = await env.startInProcessBroker({ gateway: true });
}, 120_000);

afterAll(() => env?.cleanup());

const BLOBS = 3;
const BLOB_BYTES = 900_000;

/** A GET whose answer is left unread for `pauseMs`, then read to the end. */
function pausedGet(path: string, token: string, pauseMs: number): Promise<{ status: number; body: Buffer }> {
  const url = new URL(broker.gateway!.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        hostname: url.hostname,
        port: url.port,
        path,
        ca: broker.ca!,
        agent: false,
        headers: { accept: 'application/json', authorization: `Bearer ${token}` },
      },
      (res) => {
        res.pause();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
        setTimeout(() => res.resume(), pauseMs);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('an answer of several MiB reaches a client that pauses reading, whole', async () => {
  const { token } = await deployerGrant(env, broker);
  const path = `/api/v1/namespaces/${env.ns}/configmaps`;
  const ask = (method: string, body?: string) =>
    gatewayRequest(broker.gateway!.url, broker.ca!, method, path, { token, body });
  await untilGatewayAccepts(broker, () => ask('GET'));
  for (let i = 0; i < BLOBS; i += 1) {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `blob-${i}` },
      data: { blob: 'x'.repeat(BLOB_BYTES) },
    };
    expect((await ask('POST', JSON.stringify(cm))).status).toBe(201);
  }

  const answer = await pausedGet(path, token, 1_500);
  expect(answer.status).toBe(200);
  expect(answer.body.length).toBeGreaterThan(BLOBS * BLOB_BYTES);
  const list = JSON.parse(answer.body.toString('utf8')) as { items: { data?: { blob?: string } }[] };
  const blobs = list.items.map((item) => item.data?.blob?.length ?? 0).filter((n) => n > 0);
  expect(blobs).toEqual(Array(BLOBS).fill(BLOB_BYTES));
  // The audit line counts what went out: the whole answer, nothing cut.
  const line = await waitFor('the audit line', () =>
    broker.auditLines.find(
      (l) => l.action === 'gateway' && l.verb === 'list' && l.bytesOut === answer.body.length,
    ),
  );
  expect(line.status).toBe(200);
  expect(line.incomplete).toBeUndefined();
}, 120_000);
