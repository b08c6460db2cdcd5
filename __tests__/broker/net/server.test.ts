// The HTTP layer with injected fakes (no cluster needed): rate limiting, readiness during
// shutdown, graceful draining of in-flight requests, and the refusal to serve plain HTTP by accident.
import { expect, test } from '@jest/globals';
import { createBrokerApp } from '../../../src/broker/app.js';
import { listen } from '../../../src/broker/net/server.js';
import type { VerifiedClaims } from '../../../src/broker/types.js';
import { BrokerError } from '../../../src/shared/errors.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { FAKE_CLAIMS as claims, fakeBrokerDeps, serveOnLoopback } from '../../../test/support/fake-broker.js';

const deps = (verify: () => Promise<VerifiedClaims>, perMinute = 600) =>
  fakeBrokerDeps({ verifier: { verify }, limits: { bodyBytes: 4096, perRepositoryPerMinute: perMinute } });

const body = { namespace: 'staging', role: 'deployer' };

test('per-repository rate limit: 429 with Retry-After, audited', async () => {
  const { deps: d, audit } = deps(async () => claims, 2);
  const app = createBrokerApp(d);
  const srv = await serveOnLoopback(app.handle);
  try {
    const send = () => brokerRequest(srv.url, 'POST', '/v1/exchange', { token: 'x', body });
    expect((await send()).status).toBe(403);
    expect((await send()).status).toBe(403);
    const limited = await send();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.body).toMatchObject({ error: { code: 'ERR_RATE_LIMITED' } });
    expect(audit.at(-1)).toMatchObject({ action: 'denial', reason: 'rate_limited' });
  } finally {
    await srv.close(0);
  }
});

test('graceful shutdown: readyz fails, no new connections, the in-flight exchange is answered', async () => {
  let release!: () => void;
  let entered!: () => void;
  const inVerifier = new Promise<void>((r) => (entered = r));
  const gate = new Promise<void>((r) => (release = r));
  const { deps: d } = deps(async () => {
    entered();
    await gate;
    return claims;
  });
  const app = createBrokerApp(d);
  const srv = await serveOnLoopback(app.handle);
  expect((await brokerRequest(srv.url, 'GET', '/readyz')).status).toBe(200);

  const inflight = brokerRequest(srv.url, 'POST', '/v1/exchange', { token: 'x', body });
  await inVerifier;
  app.markShuttingDown();
  expect(app.shuttingDown).toBe(true);
  const closing = srv.close(30_000);
  await expect(brokerRequest(srv.url, 'GET', '/healthz')).rejects.toThrow(/ECONNREFUSED/);
  release();
  expect((await inflight).status).toBe(403);
  await closing;
});

test('graceful shutdown gives up on requests still running after the grace period', async () => {
  let entered!: () => void;
  const inVerifier = new Promise<void>((r) => (entered = r));
  const { deps: d } = deps(() => {
    entered();
    return new Promise<VerifiedClaims>(() => undefined); // never answers
  });
  const srv = await serveOnLoopback(createBrokerApp(d).handle);
  const inflight = brokerRequest(srv.url, 'POST', '/v1/exchange', { token: 'x', body });
  await inVerifier;
  await srv.close(50);
  await expect(inflight).rejects.toThrow(/socket hang up|ECONNRESET/);
});

test('readyz reports shutting down; plain HTTP needs an explicit opt-in', async () => {
  const { deps: d } = deps(async () => claims);
  const app = createBrokerApp(d);
  const srv = await serveOnLoopback(app.handle);
  try {
    app.markShuttingDown();
    expect((await brokerRequest(srv.url, 'GET', '/readyz')).status).toBe(503);
    expect((await brokerRequest(srv.url, 'GET', '/healthz')).status).toBe(200);
  } finally {
    await srv.close(0);
  }
  await expect(listen(app.handle, { host: '127.0.0.1', port: 0, requestTimeoutMs: 5000 })).rejects.toThrow(
    /TLS/,
  );
});

test('an exchange that fails on our side counts its reason (the JWKS alert), not as a denial', async () => {
  const { deps: d } = deps(async () => {
    throw new BrokerError('ERR_UNAVAILABLE', 'jwks_unavailable', 'JWKS fetch failed');
  });
  const app = createBrokerApp(d);
  const srv = await serveOnLoopback(app.handle);
  try {
    const r = await brokerRequest(srv.url, 'POST', '/v1/exchange', { token: 'x', body });
    expect(r.status).toBe(503);
    const text = await d.metrics.registry.metrics();
    expect(text).toMatch(/^k8s_ea_exchange_failures_total\{reason="jwks_unavailable"\} 1$/m);
    expect(text).toMatch(/^k8s_ea_exchanges_total\{result="error"\} 1$/m);
    expect(text).not.toMatch(/^k8s_ea_denials_total\{/m);
  } finally {
    await srv.close(0);
  }
});
