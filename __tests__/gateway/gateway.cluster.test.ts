// The gateway against the real control plane, brokers in this process (so the clock can be moved
// and the metrics read): only live grants' requests go through; a grant's token is for the gateway
// only (401 at the API server) and the gateway forwards with a credential of the same grant that
// only the broker holds; a revocation at one replica is refused at another within the watch's
// latency; expiry is enforced by the clock while the grant still exists; discovery names no API
// server address; hostile input never reaches the API server and never gets a 5xx.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Agent, request as httpsRequest } from 'node:https';
import type { ExchangeResponse } from '../../src/shared/api.js';
import { decodeJwt } from 'jose';
import { credentialIdOf } from '../../src/broker/audit.js';
import {
  clusterEndpoint,
  kubectlAdmin,
  readAudit,
  sleep,
  tryKubectlAdmin,
  waitFor,
} from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { gatewayRequest, rawGatewayRequest, type GatewayAnswer } from './support/gateway-client.js';
import { deployerGrant } from './support/gateway-grant.js';
import { forwardedCalls, untilGatewayAccepts, untilGatewayIdle } from './support/gateway-counts.js';

let env: BrokerEnv;
let a: InProcessBroker;
let b: InProcessBroker;
/** The clock of broker `c`, moved by the expiry test. */
let offsetMs = 0;
let c: InProcessBroker;

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['gateway'],
    policy: { rules: [{ roles: ['deployer'], maxSessionSeconds: 3600 }] },
  });
  [a, b, c] = await Promise.all([
    env.startInProcessBroker({ gateway: true }),
    env.startInProcessBroker({ gateway: true }),
    // Its reaper waits an hour, so expiry at its gateway is the clock's doing alone.
    env.startInProcessBroker({
      gateway: true,
      now: () => Date.now() + offsetMs,
      reaperIntervalSeconds: 3600,
    }),
  ]);
}, 120_000);

afterAll(() => env?.cleanup());

const gatewayOf = (broker: InProcessBroker) => broker.gateway!.url;
const ask = (
  broker: InProcessBroker,
  method: string,
  path: string,
  o: Parameters<typeof gatewayRequest>[4] = {},
) => gatewayRequest(gatewayOf(broker), broker.ca!, method, path, o);

const exchange = (broker: InProcessBroker, ttlSeconds = 600, run: Record<string, string> = {}) =>
  deployerGrant(env, broker, { ttlSeconds, run });

const configmapsPath = () => `/api/v1/namespaces/${env.ns}/configmaps`;

/** A request straight to the API server, bypassing the gateway. */
const atApiServer = (path: string, token: string) => {
  const { server, caData } = clusterEndpoint();
  return gatewayRequest(server, Buffer.from(caData, 'base64'), 'GET', path, { token });
};

/** Every JWT-shaped string in the broker's audit and log lines (there should be none). */
const jwtsLogged = (broker: InProcessBroker) =>
  JSON.stringify([broker.auditLines, broker.logLines]).match(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g) ?? [];

/** Waits until `broker`'s gateway (fed by its watch) accepts the grant, and is idle again. */
const untilAccepted = (broker: InProcessBroker, token: string) =>
  untilGatewayAccepts(broker, () => ask(broker, 'GET', configmapsPath(), { token }));

describe('gateway', () => {
  test('the exchange answer names the gateway, never the API server', async () => {
    const grant = await exchange(a);
    expect(grant.server).toBe('https://127.0.0.1/');
    expect(Buffer.from(grant.certificateAuthorityData, 'base64')).toEqual(a.ca);
  });

  test("forwards a live grant's calls as the grant itself; a revoke here refuses the next call at once", async () => {
    const grant = await exchange(a);
    // Once accepted, the probes' lines are in: every line from here on is this test's.
    await untilAccepted(a, grant.token);
    const linesBefore = a.auditLines.length;
    const who = await ask(a, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      token: grant.token,
      body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
    });
    expect(who.status).toBe(201);
    expect(JSON.parse(who.body).status.userInfo.username).toBe(
      `system:serviceaccount:${env.ns}:${grant.grantId}`,
    );
    // RBAC is still the API server's: outside the role is 403 from the API server itself.
    const secrets = await ask(a, 'GET', `/api/v1/namespaces/${env.ns}/secrets`, { token: grant.token });
    expect(secrets.status).toBe(403);
    expect(secrets.message).toMatch(/cannot list resource "secrets"/);

    const revoked = await a.request('DELETE', `/v1/grants/${grant.grantId}`, { token: grant.token });
    expect(revoked.status).toBe(200);
    const after = await ask(a, 'GET', configmapsPath(), { token: grant.token });
    expect(after.status).toBe(401);
    expect(after.message).toMatch(/not that of a live k8s-ephemeral-access grant/);
    await untilGatewayIdle(a);
    const lines = a.auditLines
      .slice(linesBefore)
      .filter((l) => l.action === 'gateway' && l.grantId === grant.grantId);
    expect(lines.map((l) => [l.verb, l.status])).toEqual([
      ['create', 201],
      ['list', 403],
    ]);
    expect(lines[1]).toMatchObject({
      namespace: env.ns,
      resource: 'secrets',
      path: `/api/v1/namespaces/${env.ns}/secrets`,
      github: { repository: 'octo-org/octo-repo', run_attempt: '1', workflow: 'deploy', actor: 'octocat' },
    });
    expect(JSON.stringify(a.auditLines)).not.toContain(grant.token);
  });

  test('a grant revoked at replica A is refused at replica B within 1 s', async () => {
    // From A's answer to the revoke (the grant is gone by then) to B's first 401; polled over one
    // kept-alive connection, so a poll costs no TLS handshake.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: b.ca });
    const samples: number[] = [];
    try {
      for (let i = 0; i < 3; i += 1) {
        const grant = await exchange(a);
        await untilAccepted(b, grant.token);
        const r = await a.request('DELETE', `/v1/grants/${grant.grantId}`, { token: grant.token });
        expect(r.status).toBe(200);
        const revokedAt = Date.now();
        await waitFor(
          'replica B to refuse',
          async () =>
            (await ask(b, 'GET', configmapsPath(), { token: grant.token, agent })).status === 401
              ? true
              : undefined,
          5_000,
          5,
        );
        samples.push(Date.now() - revokedAt);
      }
    } finally {
      agent.destroy();
    }
    console.log(`gateway: revoked at replica A -> 401 at replica B after ${samples.join(', ')} ms`);
    for (const ms of samples) expect(ms).toBeLessThan(1_000);
  });

  test('an expired grant is refused within 1 s, its watch cut, while its ServiceAccount still exists', async () => {
    offsetMs = 0;
    const grant = await exchange(c, 60);
    await untilAccepted(c, grant.token);
    const expiresAt = Date.parse(grant.expiresAt);

    const watch = openWatch(gatewayOf(c), c.ca!, `${configmapsPath()}?watch=1`, grant.token);
    expect(await watch.status).toBe(200);

    offsetMs = expiresAt - Date.now() - 2_000;
    expect((await ask(c, 'GET', configmapsPath(), { token: grant.token })).status).toBe(200);
    expect(c.gateway!.credentials.size).toBe(1);
    offsetMs = expiresAt - Date.now() + 1;
    const at = Date.now();
    expect((await ask(c, 'GET', configmapsPath(), { token: grant.token })).status).toBe(401);
    const closedAfter = (await watch.closed) - at;
    console.log(`gateway: open watch closed ${closedAfter} ms after the grant's expiry`);
    expect(closedAfter).toBeLessThan(1_500);
    // Its upstream credential leaves this replica's memory with it (a sweep every second).
    await waitFor("the expired grant's upstream credential to be dropped", () =>
      c.gateway!.credentials.size === 0 ? true : undefined,
    );
    // The grant is still in the cluster (this replica's reaper waits an hour): the refusal was the
    // gateway's clock.
    offsetMs = 0;
    expect(kubectlAdmin(['get', 'serviceaccount', grant.grantId, '-n', env.ns, '-o', 'name'])).toContain(
      grant.grantId,
    );
    const line = await waitFor("the watch's audit line", () =>
      c.auditLines.find((l) => l.action === 'gateway' && l.verb === 'watch'),
    );
    expect(line).toMatchObject({ grantId: grant.grantId, incomplete: 'grant ended' });
  });

  test('a watch without events yet gets its headers at once, not with its first event', async () => {
    const grant = await exchange(a);
    await untilAccepted(a, grant.token);
    // No object matches: the API server sends headers and then nothing until the watch ends.
    const watch = openWatch(
      gatewayOf(a),
      a.ca!,
      `${configmapsPath()}?watch=1&fieldSelector=metadata.name%3Dno-such-configmap`,
      grant.token,
    );
    const headersWithin = await Promise.race([watch.status, sleep(10_000).then(() => 'no headers in 10 s')]);
    expect(headersWithin).toBe(200);
    const revoked = await a.request('DELETE', `/v1/grants/${grant.grantId}`, { token: grant.token });
    expect(revoked.status).toBe(200);
    await watch.closed;
  });

  describe('gateway-bound tokens', () => {
    test("a grant's token is refused by the API server (401) and forwarded by the gateway with a credential only the broker holds", async () => {
      const grant = await exchange(a);
      expect(grant.mode).toBe('gateway');
      // Its one audience is the gateway's, which the API server does not accept.
      expect(decodeJwt(grant.token).aud).toEqual(['https://127.0.0.1/']);
      const direct = await atApiServer(configmapsPath(), grant.token);
      expect(direct.status).toBe(401);
      const held = a.gateway!.credentials.size;
      await untilAccepted(a, grant.token);
      expect(a.gateway!.credentials.size).toBe(held + 1);
      // The API server saw the grant's ServiceAccount, authenticated by another credential than
      // the job's: the one this replica minted and logged by its id (never the token itself).
      const user = `system:serviceaccount:${env.ns}:${grant.grantId}`;
      const seen = await waitFor('the API server audit log to show the forwarded call', () => {
        const ids = readAudit()
          .filter((e) => e.user.username === user && e.stage === 'ResponseComplete')
          .map((e) => e.user.extra?.['authentication.kubernetes.io/credential-id']?.[0]);
        return ids.length > 0 ? ids : undefined;
      });
      const minted = a.logLines.filter(
        (l) => l.msg === 'gateway credential minted' && l.grantId === grant.grantId,
      );
      expect(minted).toHaveLength(1);
      expect(new Set(seen)).toEqual(new Set([minted[0]!.credentialId]));
      expect(seen).not.toContain(credentialIdOf(grant.token));
      expect(jwtsLogged(a)).toEqual([]);
      // Revoked: refused at the gateway, and the credential is gone from this replica's memory.
      expect((await a.request('DELETE', `/v1/grants/${grant.grantId}`, { token: grant.token })).status).toBe(
        200,
      );
      expect(a.gateway!.credentials.size).toBe(held);
      expect((await ask(a, 'GET', configmapsPath(), { token: grant.token })).status).toBe(401);
      // The revocation deleted the access RoleBinding and the ServiceAccount, and asked for no
      // self-revoke objects (gateway mode makes none).
      const deletes = await waitFor('the revocation in the API server audit log', () => {
        const found = readAudit()
          .filter(
            (e) =>
              e.verb === 'delete' &&
              e.stage === 'ResponseComplete' &&
              e.objectRef?.name?.startsWith(grant.grantId),
          )
          .map((e) => `${e.objectRef!.resource}/${e.objectRef!.name}`);
        return found.includes(`serviceaccounts/${grant.grantId}`) ? found : undefined;
      });
      expect(deletes.sort()).toEqual([`rolebindings/${grant.grantId}`, `serviceaccounts/${grant.grantId}`]);
    });

    test("a token the API server accepts is refused at the gateway, even one of a live grant's own ServiceAccount", async () => {
      const grant = await exchange(a);
      await untilAccepted(a, grant.token);
      const apiToken = kubectlAdmin(['create', 'token', grant.grantId, '-n', env.ns]).trim();
      expect((await atApiServer(configmapsPath(), apiToken)).status).toBe(200);
      const refused = await ask(a, 'GET', configmapsPath(), { token: apiToken });
      expect(refused.status).toBe(401);
      expect(a.auditLines.filter((l) => l.reason === 'kubernetes_token_rejected')).not.toHaveLength(0);
    });

    test('discovery through the gateway names no API server address (the API server itself does)', async () => {
      const grant = await exchange(a);
      await untilAccepted(a, grant.token);
      const apiServer = new URL(clusterEndpoint().server);
      const aggregated =
        'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';
      for (const [path, accept] of [
        ['/api', 'application/json'],
        ['/api', 'application/vnd.kubernetes.protobuf'],
        ['/apis', 'application/json'],
        ['/apis', aggregated],
        ['/apis/apps', 'application/json'],
      ] as const) {
        const r = await ask(a, 'GET', path, {
          token: grant.token,
          headers: { accept, 'accept-encoding': 'gzip' },
        });
        expect([path, r.status]).toEqual([path, 200]);
        expect(r.body).not.toContain('serverAddressByClientCIDRs');
        expect(r.body).not.toContain(`:${apiServer.port}`);
        JSON.parse(r.body);
      }
      // What the gateway removes: the API server's own answer names its address.
      const direct = await atApiServer('/api', env.rbac.token);
      expect(JSON.parse(direct.body).serverAddressByClientCIDRs).toEqual([
        expect.objectContaining({ serverAddress: expect.stringContaining(`:${apiServer.port}`) }),
      ]);
      const versions = JSON.parse((await ask(a, 'GET', '/api', { token: grant.token })).body);
      expect(versions).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    });

    test('a gateway-mode grant has no self-revoke pair; renewal moves its end and keeps its token', async () => {
      const run = { run_id: String(7_000_000 + Math.floor(Math.random() * 1_000_000)), check_run_id: '7001' };
      const grant = await exchange(a, 600, run);
      await untilAccepted(a, grant.token);
      for (const kind of ['role', 'rolebinding'])
        expect(tryKubectlAdmin(['get', kind, `${grant.grantId}-revoke`, '-n', env.ns]).stderr).toMatch(
          /NotFound/,
        );
      expect(kubectlAdmin(['get', 'rolebinding', grant.grantId, '-n', env.ns, '-o', 'name'])).toContain(
        grant.grantId,
      );
      const renewed = await a.request<Record<string, unknown>>('POST', `/v1/grants/${grant.grantId}/renew`, {
        token: await env.issuer.sign(run),
        body: { grantToken: grant.token, ttlSeconds: 900 },
      });
      expect(renewed.status).toBe(200);
      expect(renewed.body).toMatchObject({ newToken: false, token: grant.token });
      expect(Date.parse(renewed.body.expiresAt as string)).toBeGreaterThan(Date.parse(grant.expiresAt));
      expect((await ask(a, 'GET', configmapsPath(), { token: grant.token })).status).toBe(200);
      // A renewal with a token the API server accepts (not a gateway token) is refused.
      const apiToken = kubectlAdmin(['create', 'token', grant.grantId, '-n', env.ns]).trim();
      const refused = await a.request('POST', `/v1/grants/${grant.grantId}/renew`, {
        token: await env.issuer.sign(run),
        body: { grantToken: apiToken },
      });
      expect(refused.status).toBe(401);
    });
  });

  describe('hostile input: 4xx, never forwarded, never 5xx', () => {
    let live: ExchangeResponse;
    let ended: ExchangeResponse;
    let fakeGrantToken: string;
    beforeAll(async () => {
      [live, ended] = await Promise.all([exchange(a), exchange(a)]);
      await untilAccepted(a, live.token);
      await untilAccepted(a, ended.token);
      expect((await a.request('DELETE', `/v1/grants/${ended.grantId}`, { token: ended.token })).status).toBe(
        200,
      );
      // A ServiceAccount labelled and named like a grant, with a real token, but no JWT-use record.
      const name = 'gha-0123456789abcdef0123456789abcdef';
      kubectlAdmin(['create', 'serviceaccount', name, '-n', env.ns]);
      kubectlAdmin([
        'label',
        'serviceaccount',
        name,
        '-n',
        env.ns,
        'app.kubernetes.io/managed-by=k8s-ephemeral-access',
        `k8s-ephemeral-access.io/grant=${name}`,
      ]);
      kubectlAdmin([
        'annotate',
        'serviceaccount',
        name,
        '-n',
        env.ns,
        'k8s-ephemeral-access.io/expires-at=2999-01-01T00:00:00Z',
      ]);
      fakeGrantToken = kubectlAdmin(['create', 'token', name, '-n', env.ns]).trim();
    });

    /** A JWT shaped like the live grant's token (same subject and uid) with a signature of ours. */
    const forged = () => {
      const [header, payload] = live.token.split('.');
      return `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
    };
    const path = () => configmapsPath();
    const cases: [string, () => Promise<GatewayAnswer>, number][] = [
      ['no token', () => ask(a, 'GET', path()), 401],
      ['a Basic credential', () => ask(a, 'GET', path(), { headers: { authorization: 'Basic YTpi' } }), 401],
      ['a token of an ended grant', () => ask(a, 'GET', path(), { token: ended.token }), 401],
      ["the broker's own token", () => ask(a, 'GET', path(), { token: env.rbac.token }), 401],
      [
        'a non-grant ServiceAccount labelled as a grant',
        () => ask(a, 'GET', path(), { token: fakeGrantToken }),
        401,
      ],
      ['a forged token naming a live grant', () => ask(a, 'GET', path(), { token: forged() }), 401],
      [
        'two Authorization headers',
        () =>
          rawGatewayRequest(
            gatewayOf(a),
            a.ca!,
            `GET ${path()} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${live.token}\r\nAuthorization: Bearer ${env.rbac.token}\r\n\r\n`,
          ),
        401,
      ],
      [
        'impersonation headers',
        () => ask(a, 'GET', path(), { token: live.token, headers: { 'Impersonate-User': 'system:admin' } }),
        403,
      ],
      [
        'upgrade headers on a plain path',
        () =>
          ask(a, 'GET', path(), {
            token: live.token,
            headers: { connection: 'Upgrade', upgrade: 'websocket' },
          }),
        403,
      ],
      [
        'an exec path without an upgrade',
        () => ask(a, 'POST', `/api/v1/namespaces/${env.ns}/pods/p/exec?command=sh`, { token: live.token }),
        403,
      ],
      [
        'an absolute-form target',
        () =>
          rawGatewayRequest(
            gatewayOf(a),
            a.ca!,
            `GET https://kubernetes.default.svc${path()} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${live.token}\r\n\r\n`,
          ),
        400,
      ],
      [
        'a ".." path',
        () => ask(a, 'GET', `/api/v1/namespaces/${env.ns}/../../../version`, { token: live.token }),
        400,
      ],
      [
        'an encoded "..": %2e%2e',
        () => ask(a, 'GET', `/api/v1/%2e%2e/%2e%2e/healthz`, { token: live.token }),
        400,
      ],
      [
        'an encoded "/": %2F',
        () => ask(a, 'GET', `/api/v1/namespaces%2F${env.ns}/configmaps`, { token: live.token }),
        400,
      ],
      [
        'an empty segment',
        () => ask(a, 'GET', `/api//v1/namespaces/${env.ns}/configmaps`, { token: live.token }),
        400,
      ],
      ['a path outside the API', () => ask(a, 'GET', '/metrics', { token: live.token }), 404],
      ['a backslash', () => ask(a, 'GET', `/api/v1\\..\\healthz`, { token: live.token }), 400],
      [
        'Content-Length with Transfer-Encoding (smuggling)',
        () =>
          rawGatewayRequest(
            gatewayOf(a),
            a.ca!,
            `POST ${path()} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${live.token}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/secrets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
          ),
        400,
      ],
      [
        'two Host headers',
        () =>
          rawGatewayRequest(
            gatewayOf(a),
            a.ca!,
            `GET ${path()} HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: kubernetes.default.svc\r\nAuthorization: Bearer ${live.token}\r\n\r\n`,
          ),
        400,
      ],
      [
        'a Host with user info',
        () =>
          rawGatewayRequest(
            gatewayOf(a),
            a.ca!,
            `GET ${path()} HTTP/1.1\r\nHost: evil@kubernetes.default.svc\r\nAuthorization: Bearer ${live.token}\r\n\r\n`,
          ),
        400,
      ],
    ];

    test.each(cases)('%s', async (_name, send, status) => {
      await untilGatewayIdle(a);
      const before = await forwardedCalls(a);
      const answer = await send();
      expect(answer.status).toBe(status);
      await sleep(50);
      expect(await forwardedCalls(a)).toBe(before);
    });

    test('the live token itself still goes through (the cases above were refused for their flaw)', async () => {
      const before = await forwardedCalls(a);
      expect((await ask(a, 'GET', path(), { token: live.token })).status).toBe(200);
      // Counted when the gateway's answer closes, which may come after the client has read it.
      await waitFor('the gateway to count the call', async () =>
        (await forwardedCalls(a)) > before ? true : undefined,
      );
      expect(await forwardedCalls(a)).toBe(before + 1);
    });
  });

  test('a chunked body over 1 MiB streams through to the API server', async () => {
    const grant = await exchange(a);
    await untilAccepted(a, grant.token);
    // A ConfigMap holds at most 1 MiB; the body's indentation takes it over 1 MiB on the wire.
    const data = 'x'.repeat(900_000);
    const body = JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'big-chunked' },
      data: { blob: data },
    }).replace('{', `{${' '.repeat(200_000)}`);
    expect(Buffer.byteLength(body)).toBeGreaterThan(1_048_576);
    const created = await ask(a, 'POST', configmapsPath(), {
      token: grant.token,
      headers: { 'transfer-encoding': 'chunked' },
      body,
    });
    expect(created.status).toBe(201);
    // Written when the answer's connection closes, a moment after the client has read it.
    const line = await waitFor('the audit line', () =>
      a.auditLines.find((l) => l.action === 'gateway' && l.grantId === grant.grantId && l.verb === 'create'),
    );
    expect(line.bytesIn).toBe(Buffer.byteLength(body));
  });
});

/** A watch through the gateway: its status once headers come, and when the connection closed. */
function openWatch(baseUrl: string, ca: Buffer, path: string, token: string) {
  const url = new URL(baseUrl);
  let closed!: (at: number) => void;
  const closedP = new Promise<number>((r) => (closed = r));
  const status = new Promise<number>((resolve, reject) => {
    const req = httpsRequest(
      {
        hostname: url.hostname,
        port: url.port,
        path,
        ca,
        agent: false,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        resolve(res.statusCode ?? 0);
        res.on('data', () => undefined);
        res.on('close', () => closed(Date.now()));
        res.on('error', () => undefined);
      },
    );
    req.on('error', (err) => {
      closed(Date.now());
      reject(err);
    });
    req.end();
  });
  return { status, closed: closedP };
}
