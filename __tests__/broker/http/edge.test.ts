// The broker's HTTP edge with injected fakes (no cluster needed): duplicate JSON keys, the cheap
// checks and the rate limit in front of every TokenReview / JWT verification on the revoke route,
// and log and audit lines that cannot be reordered or split by what a client sent.
import { afterEach, describe, expect, test } from '@jest/globals';
import { base64url } from 'jose';
import { createBrokerApp } from '../../../src/broker/app.js';
import { createAuditLog } from '../../../src/broker/audit.js';
import type { BrokerDeps } from '../../../src/broker/deps.js';
import type { RunningServer } from '../../../src/broker/net/server.js';
import { findDuplicateKey } from '../../../src/broker/http/strict-json.js';
import { scriptedClients } from '../../../test/support/scripted-clients.js';
import { createLogger } from '../../../src/broker/logger.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { FAKE_CLAIMS, fakeBrokerDeps, serveOnLoopback } from '../../../test/support/fake-broker.js';
import type { Reason } from '../../../src/shared/contract.js';

const GRANT = `gha-${'ab'.repeat(16)}`;

/**
 * Counts the verifications, TokenReviews and JWT spends (JWT-use records written) the edge lets
 * through; every token is unknown to the cluster.
 */
function deps(limits: Partial<BrokerDeps['limits']> = {}) {
  const calls = { verify: 0, tokenReview: 0, spent: 0 };
  const fake = fakeBrokerDeps({
    verifier: {
      verify: async () => {
        calls.verify += 1;
        return FAKE_CLAIMS;
      },
    },
    k8s: scriptedClients({
      authn: {
        createTokenReview: async () => {
          calls.tokenReview += 1;
          return { status: { authenticated: false } };
        },
      },
      core: {
        readNamespacedServiceAccount: async () => {
          throw Object.assign(new Error('not found'), { code: 404 });
        },
      },
      coordination: {
        createNamespacedLease: async () => {
          calls.spent += 1;
          return {};
        },
      },
    }),
    limits: { bodyBytes: 4096, perRepositoryPerMinute: 600, ...limits },
  });
  return { d: fake.deps, audit: fake.audit, logs: fake.logs, calls };
}

let srv: RunningServer | undefined;
afterEach(async () => {
  await srv?.close(0);
  srv = undefined;
});
async function serve(d: BrokerDeps): Promise<string> {
  srv = await serveOnLoopback(createBrokerApp(d).handle);
  return srv.url;
}

/** An unsigned JWT-shaped token: enough for the cheap checks, never for verification. */
const jwtShaped = (payload: Record<string, unknown>) =>
  `${base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'k' }))}.${base64url.encode(JSON.stringify(payload))}.c2ln`;

describe('duplicate JSON keys', () => {
  test.each([
    ['the issue example', '{"namespace":"other","role":"deployer","namespace":"apps"}'],
    ['an escaped spelling of the same key', '{"namespace":"a","\\u006eamespace":"b","role":"r"}'],
    ['ttlSeconds twice', '{"namespace":"a","role":"r","ttlSeconds":60,"ttlSeconds":600}'],
  ])('%s → 400 invalid_request before the token is looked at', async (_name, rawBody) => {
    const { d, audit, calls } = deps();
    const url = await serve(d);
    const r = await brokerRequest(url, 'POST', '/v1/exchange', { token: 'x', rawBody });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: 'ERR_BAD_REQUEST' } });
    expect(audit.at(-1)).toMatchObject({ action: 'denial', reason: 'invalid_request' });
    expect(calls.verify).toBe(0);
  });

  test('the scanner: decoded keys per object, strings and nesting respected', () => {
    expect(findDuplicateKey('{"a":1,"b":2}')).toBeUndefined();
    expect(findDuplicateKey('{"a":1,"\\u0061":2}')).toBe('a');
    expect(findDuplicateKey('{"a":{"a":1},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
    expect(findDuplicateKey('{"x":"\\"a\\":1,\\"a\\":2","a":1}')).toBeUndefined();
    expect(findDuplicateKey('{"q\\"":1,"q\\"":2}')).toBe('q"');
    expect(findDuplicateKey('[{"a":1,"b":{"c":1,"c":2}}]')).toBe('c');
    expect(findDuplicateKey('{"a":[1,{"z":1}],"a":2}')).toBe('a');
    expect(findDuplicateKey('{ "a" : 1 , "a" : 2 }')).toBe('a');
    expect(findDuplicateKey('"a"')).toBeUndefined();
  });
});

describe('revocation: cheap checks and a rate limit before any TokenReview or JWT verification', () => {
  test('a bearer that is not a JWT at all → 400, nothing verified or reviewed', async () => {
    const { d, audit, calls } = deps();
    const url = await serve(d);
    const r = await brokerRequest(url, 'DELETE', `/v1/grants/${GRANT}`, { token: 'garbage' });
    expect(r.status).toBe(400);
    expect(audit.at(-1)).toMatchObject({ action: 'denial', reason: 'jwt_malformed' });
    expect(calls).toEqual({ verify: 0, tokenReview: 0, spent: 0 });
  });

  test('a Kubernetes token naming another ServiceAccount → 404 without a TokenReview', async () => {
    const { d, audit, calls } = deps();
    const url = await serve(d);
    for (const sub of [
      'system:serviceaccount:team-a:someone-else',
      `system:serviceaccount:kube-system:${GRANT}`,
      undefined,
    ]) {
      const token = jwtShaped({ sub, 'kubernetes.io': { namespace: 'team-a' } });
      const r = await brokerRequest(url, 'DELETE', `/v1/grants/${GRANT}`, { token });
      expect(r.status).toBe(404);
      expect(audit.at(-1)).toMatchObject({ action: 'denial', reason: 'token_of_another_identity' });
    }
    expect(calls.tokenReview).toBe(0);
    // The one that names this grant is reviewed (and refused by the fake API server).
    const own = jwtShaped({
      sub: `system:serviceaccount:team-a:${GRANT}`,
      'kubernetes.io': { namespace: 'team-a' },
    });
    expect((await brokerRequest(url, 'DELETE', `/v1/grants/${GRANT}`, { token: own })).status).toBe(401);
    expect(calls.tokenReview).toBe(1);
  });

  test('over limits.revocationsPerMinute → 429 with Retry-After, before verification', async () => {
    const { d, audit, calls } = deps({ revocationsPerMinute: 3 });
    const url = await serve(d);
    const token = jwtShaped({ iss: 'https://issuer.example', jti: 'x' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1)
      statuses.push((await brokerRequest(url, 'DELETE', `/v1/grants/${GRANT}`, { token })).status);
    expect(statuses).toEqual([404, 404, 404, 429, 429]);
    expect(calls.verify).toBe(3);
    // Each verified JWT is spent before the grant is looked up, even though none is found.
    expect(calls.spent).toBe(3);
    expect(audit.at(-1)).toMatchObject({ action: 'denial', reason: 'rate_limited' });
    // Malformed requests are refused before the limiter and do not use it up for others.
    expect((await brokerRequest(url, 'DELETE', '/v1/grants/not-a-grant', { token })).status).toBe(404);
    expect(calls.verify).toBe(3);
  });
});

describe('log and audit lines: nothing that reorders or splits a line gets through raw', () => {
  const UNSAFE = ['\u202e', '\u2066', '\u2069', '\u200f', '\u2028', '\u2029', '\u0085', '\u001b'];
  const raw = new RegExp(`[${UNSAFE.join('')}]`);

  test('the logger and the audit log escape them; the JSON reads back the same', () => {
    const lines: string[] = [];
    const text = `refs/heads/${UNSAFE.join('x')}main`;
    createLogger({ write: (l) => void lines.push(l) }).info('m', { detail: text });
    createAuditLog((l) => void lines.push(l)).record({
      action: 'denial',
      // Typed as a Reason, but the line is escaped whatever text reaches it.
      reason: text as Reason,
      claims: { ref: text },
    });
    for (const line of lines) {
      expect(line).not.toMatch(raw);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n');
    }
    expect((JSON.parse(lines[0]!) as { detail: string }).detail).toBe(text);
    expect((JSON.parse(lines[1]!) as { github: { ref: string } }).github.ref).toBe(text);
  });

  test('a hostile body key reaches the log only escaped', async () => {
    const { d, logs } = deps();
    const url = await serve(d);
    const rawBody = '{"namespace":"a","role":"r","\\u202e\\u2028evil":1}';
    const r = await brokerRequest(url, 'POST', '/v1/exchange', { token: 'x', rawBody });
    expect(r.status).toBe(400);
    const line = logs.find((l) => l.includes('exchange refused'));
    expect(line).toContain('\\u202e\\u2028evil');
    expect(line).not.toMatch(raw);
  });
});
