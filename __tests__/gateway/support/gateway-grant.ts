// A deployer grant from a broker of the gateway suites' environment: a fresh JWT of the local issuer,
// exchanged for the environment's job namespace, and the exchange must succeed.
import { expect } from '@jest/globals';
import type { ExchangeResponse } from '../../../src/shared/api.js';
import type { BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';

export async function deployerGrant(
  env: BrokerEnv,
  broker: InProcessBroker,
  { ttlSeconds = 600, run = {} }: { ttlSeconds?: number; run?: Record<string, string> } = {},
): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(run),
    body: { namespace: env.ns, role: 'deployer', ttlSeconds },
  });
  expect(r.status).toBe(200);
  return r.body;
}
