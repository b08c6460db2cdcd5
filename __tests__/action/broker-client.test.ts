// The broker client: request shape, refusal details, response checks, retry classification, and
// the node transport's TLS trust (an extra CA from `broker-ca`) against a real HTTPS server.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BrokerProtocolError,
  BrokerRefusal,
  classifyBrokerError,
  createBrokerClient,
  parseExchangeResponse,
} from '../../src/action/broker-client.js';
import { createNodeTransport, NetworkError } from '../../src/action/http-transport.js';
import { brokerError, exchangeResponse, json, scriptedTransport, TOKEN } from './support/fakes.js';

const JWT = 'header.payload.signature-JWT';
const now = () => Date.parse('2030-01-01T00:00:00Z');

describe('exchange', () => {
  test('POSTs the request with the JWT as bearer, under the broker URL path prefix', async () => {
    const t = scriptedTransport(() => json(200, exchangeResponse()));
    const client = createBrokerClient({
      baseUrl: new URL('https://b.example/k8s-access'),
      transport: t.transport,
      now,
    });
    const grant = await client.exchange(JWT, { namespace: 'team-a', role: 'deployer', ttlSeconds: 900 });
    expect(grant.token).toBe(TOKEN);
    const req = t.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url.href).toBe('https://b.example/k8s-access/v1/exchange');
    expect(req.headers.authorization).toBe(`Bearer ${JWT}`);
    expect(JSON.parse(req.body!)).toEqual({ namespace: 'team-a', role: 'deployer', ttlSeconds: 900 });
  });

  test('a refusal carries the broker code, message and request id, and no request secret', async () => {
    const t = scriptedTransport(() =>
      brokerError(403, 'ERR_FORBIDDEN', 'not allowed by the broker policy', 'r-42'),
    );
    const client = createBrokerClient({ baseUrl: new URL('https://b.example'), transport: t.transport, now });
    const err = (await client
      .exchange(JWT, { namespace: 'a', role: 'b' })
      .catch((e: unknown) => e)) as BrokerRefusal;
    expect(err).toBeInstanceOf(BrokerRefusal);
    expect(err).toMatchObject({ status: 403, code: 'ERR_FORBIDDEN', requestId: 'r-42' });
    expect(err.message).toBe(
      'broker refused the exchange: not allowed by the broker policy (ERR_FORBIDDEN, HTTP 403, request id r-42)',
    );
    expect(err.message).not.toContain(JWT);
  });

  test('a non-JSON error page is reported by status only', async () => {
    const t = scriptedTransport(() => ({ status: 502, headers: {}, body: '<html>Bad gateway</html>' }));
    const client = createBrokerClient({ baseUrl: new URL('https://b.example'), transport: t.transport, now });
    await expect(client.exchange(JWT, { namespace: 'a', role: 'b' })).rejects.toThrow(
      'broker refused the exchange: no reason given (HTTP 502)',
    );
  });

  test('Retry-After on 429 becomes the retry wait', async () => {
    const t = scriptedTransport(() => ({
      ...brokerError(429, 'ERR_RATE_LIMITED', 'slow down'),
      headers: { 'retry-after': '4' },
    }));
    const client = createBrokerClient({ baseUrl: new URL('https://b.example'), transport: t.transport, now });
    const err = await client.exchange(JWT, { namespace: 'a', role: 'b' }).catch((e: unknown) => e);
    expect(classifyBrokerError(err)).toEqual({ retry: true, afterMs: 4_000 });
  });
});

describe('revoke', () => {
  test('DELETEs the grant with the grant token', async () => {
    const t = scriptedTransport(() => json(200, { grantId: 'g-1', revoked: true }));
    const client = createBrokerClient({
      baseUrl: new URL('https://b.example/'),
      transport: t.transport,
      now,
    });
    await expect(client.revoke('g-1', TOKEN)).resolves.toEqual({ grantId: 'g-1', revoked: true });
    expect(t.requests[0]).toMatchObject({ method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(t.requests[0]!.url.href).toBe('https://b.example/v1/grants/g-1');
  });
});

describe('classifyBrokerError', () => {
  test.each([
    ['network error', new NetworkError('reset'), true],
    ['HTTP 500', new BrokerRefusal('x', 500, {}), true],
    ['HTTP 503', new BrokerRefusal('x', 503, {}), true],
    ['HTTP 429', new BrokerRefusal('x', 429, {}), true],
    ['HTTP 400', new BrokerRefusal('x', 400, {}), false],
    ['HTTP 401', new BrokerRefusal('x', 401, {}), false],
    ['HTTP 403', new BrokerRefusal('x', 403, {}), false],
    ['HTTP 404', new BrokerRefusal('x', 404, {}), false],
    ['protocol error', new BrokerProtocolError('bad'), false],
    ['other error', new Error('other'), false],
  ])('%s -> retry %s', (_label, err, retry) => {
    expect(classifyBrokerError(err).retry).toBe(retry);
  });
});

describe('parseExchangeResponse', () => {
  test.each([
    [{ grantId: '' }, /"grantId" is missing/],
    [{ grantId: 'Not_A_Name' }, /"grantId" is not a Kubernetes object name/],
    [{ token: 'has space' }, /"token" contains characters/],
    [{ server: 'http://127.0.0.1:6443' }, /"server" is not an https:\/\/ URL/],
    [{ namespace: 'UPPER' }, /"namespace" is not a namespace name/],
    [{ certificateAuthorityData: '%%%' }, /not base64/],
    [{ expiresAt: 'tomorrow' }, /"expiresAt" is not a timestamp/],
    [{ mode: 'proxy' }, /"mode" is neither "direct" nor "gateway"/],
  ])('rejects %j without echoing the token', (override, message) => {
    const body = JSON.stringify({ ...exchangeResponse(), ...override });
    expect(() => parseExchangeResponse(body)).toThrow(message);
    try {
      parseExchangeResponse(body);
    } catch (err) {
      expect((err as Error).message).not.toContain(TOKEN);
    }
  });
  test('accepts an empty CA (a gateway with a publicly trusted certificate), not a missing one', () => {
    const empty = parseExchangeResponse(
      JSON.stringify({ ...exchangeResponse(), certificateAuthorityData: '' }),
    );
    expect(empty.certificateAuthorityData).toBe('');
    const without: Partial<ReturnType<typeof exchangeResponse>> = exchangeResponse();
    delete without.certificateAuthorityData;
    expect(() => parseExchangeResponse(JSON.stringify(without))).toThrow(
      /"certificateAuthorityData" is missing/,
    );
  });
  test('reads the mode; an answer without one (an older broker) is direct', () => {
    const gateway = parseExchangeResponse(JSON.stringify({ ...exchangeResponse(), mode: 'gateway' }));
    expect(gateway.mode).toBe('gateway');
    expect(parseExchangeResponse(JSON.stringify(exchangeResponse())).mode).toBe('direct');
  });
  test('rejects a body that is not JSON', () => {
    expect(() => parseExchangeResponse('<html>')).toThrow(BrokerProtocolError);
  });
});

describe('node transport TLS', () => {
  let dir: string;
  let server: Server;
  let url: URL;
  let caPem: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ea-tls-'));
    const ssl = (...args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    };
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
    );
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'srv.key',
      '-out',
      'srv.csr',
      '-subj',
      '/CN=127.0.0.1',
    );
    ssl(
      'x509',
      '-req',
      '-in',
      'srv.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'srv.pem',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
    caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    server = createServer(
      { key: readFileSync(join(dir, 'srv.key')), cert: readFileSync(join(dir, 'srv.pem')) },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });
  afterAll(async () => {
    if (server) await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('trusts the server only when its CA is given', async () => {
    const req = { method: 'GET' as const, url, headers: {}, timeoutMs: 5_000 };
    const untrusted = await createNodeTransport()(req).catch((e: unknown) => e);
    expect(untrusted).toBeInstanceOf(NetworkError);
    const trusted = await createNodeTransport({ ca: caPem })(req);
    expect(trusted.status).toBe(200);
    expect(trusted.body).toBe('{"ok":true}');
  });
});

test('an unreachable broker is a NetworkError (retryable)', async () => {
  const closed = new URL('http://127.0.0.1:1/');
  const err = await createNodeTransport()({
    method: 'GET',
    url: closed,
    headers: {},
    timeoutMs: 2_000,
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NetworkError);
  expect(classifyBrokerError(err).retry).toBe(true);
});
