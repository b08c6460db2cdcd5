// Network boundaries at the gateway: a grant of a rule with sourceRanges is usable only from those
// addresses, checked on every call against the running policy, as at the exchange. Behind a trusted
// proxy (here: this test, on 127.0.0.1) the client address is X-Forwarded-For's.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { ExchangeResponse } from '../../src/shared/api.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { gatewayRequest } from './support/gateway-client.js';
import { forwardedCalls, untilGatewayAccepts } from './support/gateway-counts.js';

const RUNNERS = '10.20.0.0/16';
let env: BrokerEnv;
let broker: InProcessBroker;

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['gateway-sources'],
    policy: { rules: [{ roles: ['deployer'], sourceRanges: [RUNNERS] }] },
  });
  broker = await env.startInProcessBroker({ gateway: true, trustedProxies: ['127.0.0.1/32'] });
}, 120_000);

afterAll(() => env?.cleanup());

const from = (address: string) => ({ 'x-forwarded-for': address });

test("a grant is forwarded only from its rule's sourceRanges, refused elsewhere without reaching the API server", async () => {
  const refusedAtExchange = await broker.request('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'deployer' },
    headers: from('192.0.2.7'),
  });
  expect(refusedAtExchange.status).toBe(403);

  const granted = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'deployer' },
    headers: from('10.20.3.4'),
  });
  expect(granted.status).toBe(200);
  const { token } = granted.body;
  const path = `/api/v1/namespaces/${env.ns}/configmaps`;
  const ask = (headers: Record<string, string>) =>
    gatewayRequest(broker.gateway!.url, broker.ca!, 'GET', path, { token, headers });

  await untilGatewayAccepts(
    broker,
    () => ask(from('10.20.9.9')),
    'the gateway to accept the grant from inside the range',
  );
  const forwardedBefore = await forwardedCalls(broker);
  for (const outside of ['192.0.2.7', '10.21.0.1', '::1']) {
    const r = await ask(from(outside));
    expect([outside, r.status]).toEqual([outside, 403]);
    expect(r.message).toMatch(/address/);
  }
  // The peer itself (127.0.0.1, no header) is outside the range too.
  expect((await ask({})).status).toBe(403);
  expect(await forwardedCalls(broker)).toBe(forwardedBefore);
  const refusals = (await broker.metrics.gatewayRefusals.get()).values.find(
    (v) => v.labels.reason === 'source_not_allowed',
  );
  expect(refusals?.value).toBe(4);
});
