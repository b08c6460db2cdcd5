// sourceRanges and trustedProxies in the built broker, against the real control plane: the exchange
// and the renewal admit or refuse by the client's address, read X-Forwarded-For only from a trusted
// peer, and audit the address they decided on. The test client is 127.0.0.1 (the brokers listen
// there).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';

let env: BrokerEnv;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['source'] });
}, 120_000);
afterAll(() => env?.cleanup());

/** A broker whose one rule admits only `ranges`, with these extra config keys. */
function brokerAdmitting(ranges: string[], config: Record<string, unknown> = {}): Promise<RunningBroker> {
  return env.startBroker({
    policyYaml: policyYaml({
      namespaces: env.namespaces,
      rules: [{ name: 'runners', sourceRanges: ranges }],
    }),
    config,
  });
}

async function exchange(broker: RunningBroker, headers: Record<string, string> = {}) {
  const jwt = await env.issuer.sign();
  return broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token: jwt,
    headers,
    body: { namespace: env.ns, role: 'viewer', ttlSeconds: 600 },
  });
}

/** The audit line of the request with this x-request-id. */
const auditOf = (broker: RunningBroker, requestId: unknown) =>
  broker.auditLine((l) => l.requestId === requestId);

async function expectGranted(broker: RunningBroker, headers: Record<string, string> = {}) {
  const r = await exchange(broker, headers);
  expect(r.status).toBe(200);
  const revoked = await broker.request('DELETE', `/v1/grants/${r.body.grantId}`, { token: r.body.token });
  expect(revoked.status).toBe(200);
  return auditOf(broker, r.headers['x-request-id']);
}

async function expectRefused(broker: RunningBroker, headers: Record<string, string> = {}) {
  const before = managedObjects([env.ns]);
  const r = await exchange(broker, headers);
  expect(r.status).toBe(403);
  // The client is told only that the policy refused: not which check, not which ranges.
  expect(r.body.error).toMatchObject({ code: 'ERR_FORBIDDEN', message: 'not allowed by the broker policy' });
  expect(JSON.stringify(r.body)).not.toMatch(/source|10\.0\.0\.0|127\.0\.0\.1/);
  expect(managedObjects([env.ns])).toEqual(before);
  return auditOf(broker, r.headers['x-request-id']);
}

describe('sourceRanges at exchange', () => {
  test('a rule admitting 127.0.0.0/8 grants to the local client, audited with its address', async () => {
    const broker = await brokerAdmitting(['127.0.0.0/8']);
    const line = await expectGranted(broker);
    expect(line).toMatchObject({ action: 'exchange', policyRule: 'runners', clientAddress: '127.0.0.1' });
    expect(line).not.toHaveProperty('proxyAddress');
  });

  test('a rule admitting 10.0.0.0/8 only refuses it: 403, source_not_allowed, nothing created', async () => {
    const broker = await brokerAdmitting(['10.0.0.0/8']);
    expect(await expectRefused(broker)).toMatchObject({
      action: 'denial',
      reason: 'source_not_allowed',
      clientAddress: '127.0.0.1',
      github: { repository_id: expect.any(String), run_id: expect.any(String) },
    });
    // Without trustedProxies, X-Forwarded-For is the client's word, and ignored.
    const spoofed = await expectRefused(broker, { 'x-forwarded-for': '10.1.2.3' });
    expect(spoofed).toMatchObject({ reason: 'source_not_allowed', clientAddress: '127.0.0.1' });
    expect(spoofed).not.toHaveProperty('proxyAddress');
    const metrics = await broker.internalGet('/metrics');
    expect(metrics.body).toMatch(/k8s_ea_denials_total\{reason="source_not_allowed"\} 2/);
  });
});

describe('trustedProxies', () => {
  test('X-Forwarded-For from a trusted peer names the client, read from the right', async () => {
    const broker = await brokerAdmitting(['10.0.0.0/8'], { trustedProxies: ['127.0.0.0/8'] });
    expect(await expectGranted(broker, { 'x-forwarded-for': '10.1.2.3' })).toMatchObject({
      clientAddress: '10.1.2.3',
      proxyAddress: '127.0.0.1',
    });
    // The client prepends an admitted address; the proxy appends the one it saw.
    expect(await expectRefused(broker, { 'x-forwarded-for': '10.1.2.3, 203.0.113.9' })).toMatchObject({
      reason: 'source_not_allowed',
      clientAddress: '203.0.113.9',
      proxyAddress: '127.0.0.1',
    });
    // Garbage where the proxy's entry should be: no address, so no range admits it.
    expect(await expectRefused(broker, { 'x-forwarded-for': '10.1.2.3, unknown' })).toMatchObject({
      reason: 'source_not_allowed',
      clientAddress: 'unknown',
    });
    // The trusted peer itself, forwarding nothing, is the client.
    expect(await expectRefused(broker)).toMatchObject({ clientAddress: '127.0.0.1' });
  });

  test('X-Forwarded-For from a peer outside trustedProxies is ignored', async () => {
    const broker = await brokerAdmitting(['10.0.0.0/8'], { trustedProxies: ['192.0.2.0/24'] });
    const line = await expectRefused(broker, { 'x-forwarded-for': '10.1.2.3' });
    expect(line).toMatchObject({ reason: 'source_not_allowed', clientAddress: '127.0.0.1' });
    expect(line).not.toHaveProperty('proxyAddress');
  });
});

describe('sourceRanges at renewal', () => {
  test('a rule with sourceRanges renews from inside them (audited with the address), not from outside', async () => {
    // The proxy is trusted, so a request it forwards for 203.0.113.9 comes from outside the range.
    const broker = await env.startBroker({
      policyYaml: policyYaml({
        namespaces: env.namespaces,
        rules: [{ name: 'runners', sourceRanges: ['127.0.0.0/8'], maxSessionSeconds: 3600 }],
      }),
      config: { trustedProxies: ['127.0.0.0/8'] },
    });
    const run = { run_id: String(8_000_000 + Math.floor(Math.random() * 1_000_000)), check_run_id: '8001' };
    const granted = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
      token: await env.issuer.sign(run),
      body: { namespace: env.ns, role: 'viewer', ttlSeconds: 600 },
    });
    expect(granted.status).toBe(200);
    const { grantId, token } = granted.body;
    const renew = async (headers: Record<string, string> = {}) =>
      broker.request<Record<string, unknown>>('POST', `/v1/grants/${grantId}/renew`, {
        token: await env.issuer.sign(run),
        headers,
        body: { grantToken: token, ttlSeconds: 900 },
      });

    const inside = await renew();
    expect(inside.status).toBe(200);
    expect(Date.parse(inside.body.expiresAt as string)).toBeGreaterThan(Date.parse(granted.body.expiresAt));
    expect(await auditOf(broker, inside.headers['x-request-id'])).toMatchObject({
      action: 'renewal',
      policyRule: 'runners',
      clientAddress: '127.0.0.1',
    });
    const outside = await renew({ 'x-forwarded-for': '203.0.113.9' });
    expect(outside.status).toBe(403);
    expect(await auditOf(broker, outside.headers['x-request-id'])).toMatchObject({
      action: 'denial',
      request: 'renew',
      reason: 'source_not_allowed',
      clientAddress: '203.0.113.9',
      proxyAddress: '127.0.0.1',
    });
    expect((await broker.request('DELETE', `/v1/grants/${grantId}`, { token })).status).toBe(200);
  });
});
