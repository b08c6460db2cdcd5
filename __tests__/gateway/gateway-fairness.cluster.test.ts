// Gateway fairness and the audit join against the real API server, brokers in this process:
// one grant holding its cap of watches does not slow another grant's GET through the same
// replica, and revoking a grant with calls in flight leaves every forwarded call with exactly one
// gateway line whose Audit-ID is in the API server's own audit log, with the same status.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { kubectlAdmin, readAudit, sleep, waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { gatewayRequest } from './support/gateway-client.js';
import { deployerGrant } from './support/gateway-grant.js';
import { untilGatewayAccepts } from './support/gateway-counts.js';

let env: BrokerEnv;
/** Small caps, so that a test can reach them: 4 watches per grant, 4 long-running connections. */
let capped: InProcessBroker;
let plain: InProcessBroker;
const WATCH_CAP = 4;
const WAIT_MS = 1_000;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['gw-fair'], policy: { rules: [{ roles: ['deployer'] }] } });
  [capped, plain] = await Promise.all([
    env.startInProcessBroker({
      gateway: true,
      gatewayLimits: {
        longRunningPerGrant: WATCH_CAP,
        longRunningPerRepository: 4 * WATCH_CAP,
        longRunningConnections: WATCH_CAP,
        upstreamWaitMs: WAIT_MS,
      },
    }),
    env.startInProcessBroker({ gateway: true }),
  ]);
}, 120_000);

afterAll(() => env?.cleanup());

const exchange = (broker: InProcessBroker) => deployerGrant(env, broker);

const configmaps = () => `/api/v1/namespaces/${env.ns}/configmaps`;
const ask = (broker: InProcessBroker, method: string, path: string, token: string, body?: string) =>
  gatewayRequest(broker.gateway!.url, broker.ca!, method, path, { token, body });
const untilAccepted = (broker: InProcessBroker, token: string) =>
  untilGatewayAccepts(broker, () => ask(broker, 'GET', configmaps(), token));

/**
 * A request held open by the test: its status once headers come, its end, and a way to stop it.
 * With a `content-type` header the body is left to the caller (written and ended through `req`).
 */
function openCall(broker: InProcessBroker, method: string, path: string, token: string, headers = {}) {
  const url = new URL(broker.gateway!.url);
  const options: RequestOptions = {
    hostname: url.hostname,
    port: url.port,
    method,
    path,
    ca: broker.ca,
    agent: false,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...headers },
  };
  let ended!: () => void;
  const done = new Promise<void>((r) => (ended = r));
  const req = httpsRequest(options);
  const answer = new Promise<{ status: number; retryAfter?: string; body: Promise<string> }>((resolve) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      const body = new Promise<string>((r) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('close', () => r(Buffer.concat(chunks).toString()));
        res.on('error', () => undefined);
      });
      void body.then(ended);
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string, body });
    });
    req.on('error', () => {
      ended();
      resolve({ status: 0, body: Promise.resolve('') });
    });
  });
  if (!('content-type' in headers)) req.end();
  return { req, answer, done, stop: () => req.destroy() };
}

describe('gateway fairness', () => {
  test("one grant holding its cap of watches: another grant's GET through the same replica answers within 1 s", async () => {
    const [a, b] = [await exchange(capped), await exchange(capped)];
    await untilAccepted(capped, a.token);
    await untilAccepted(capped, b.token);
    const watchPath = `${configmaps()}?watch=true`;
    const watches = Array.from({ length: WATCH_CAP }, () => openCall(capped, 'GET', watchPath, a.token));
    expect((await Promise.all(watches.map((w) => w.answer))).map((r) => r.status)).toEqual(
      Array(WATCH_CAP).fill(200),
    );
    // Over its cap: 429 with Retry-After, audited with the grant and its run; never forwarded.
    const over = await openCall(capped, 'GET', `${configmaps()}?watch=yes`, a.token).answer;
    expect(over.status).toBe(429);
    expect(over.retryAfter).toBe('1');
    expect(capped.auditLines.find((l) => l.reason === 'long_running_limit')).toMatchObject({
      action: 'denial',
      request: 'gateway',
      grantId: a.grantId,
      github: expect.objectContaining({ repository: 'octo-org/octo-repo' }),
    });

    // Grant B, same replica, while A's watches hold every long-running connection.
    const samples: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      const r = await ask(capped, 'GET', configmaps(), b.token);
      samples.push(Math.round(performance.now() - started));
      expect(r.status).toBe(200);
    }
    console.log(
      `gateway fairness: grant A holds ${WATCH_CAP} watches (its cap, every long-running connection); ` +
        `grant B's GET answered in ${samples.join(', ')} ms`,
    );
    for (const ms of samples) expect(ms).toBeLessThan(1_000);

    // B's own watch finds no long-running connection: it waits WAIT_MS, then 503.
    const started = Date.now();
    const busy = await openCall(capped, 'GET', watchPath, b.token).answer;
    expect(busy.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 50);
    expect(capped.auditLines.find((l) => l.reason === 'upstream_busy')).toMatchObject({ grantId: b.grantId });
    expect((await capped.metrics.gatewayUpstreamQueued.get()).values).toEqual(
      expect.arrayContaining([expect.objectContaining({ labels: { lane: 'long' }, value: 0 })]),
    );

    // One of A's watches ends: B's watch gets the connection.
    watches[0]!.stop();
    await watches[0]!.done;
    const later = openCall(capped, 'GET', watchPath, b.token);
    expect((await later.answer).status).toBe(200);
    for (const w of [...watches, later]) w.stop();
  });
});

describe('audit that always joins', () => {
  test('revoking a grant with calls in flight: every forwarded call has one line, found in the API server audit log with its status', async () => {
    const g = await exchange(plain);
    const ofGrant = (l: Record<string, unknown>) =>
      (l.grantId === g.grantId || l.claimedGrantId === g.grantId) &&
      (l.action === 'gateway' || l.request === 'gateway');
    // Once accepted, the probes' lines are in: every line from here on is this test's.
    await untilAccepted(plain, g.token);
    const lineCountBefore = plain.auditLines.length;
    const calls: Promise<unknown>[] = [];
    // Watches, held open.
    const watches = [0, 1, 2].map(() => openCall(plain, 'GET', `${configmaps()}?watch=1`, g.token));
    for (const w of watches) calls.push(w.answer);
    await Promise.all(watches.map((w) => w.answer));
    // A write whose body is still arriving when the grant is revoked: already sent to the API server.
    const slow = openCall(plain, 'POST', configmaps(), g.token, {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
    });
    calls.push(slow.answer);
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'in-flight' } });
    slow.req.write(manifest.slice(0, 20));
    await sleep(500);
    // A burst of short calls around the revocation: some forwarded, some refused.
    for (let i = 0; i < 12; i += 1)
      calls.push(
        i % 2 === 0
          ? ask(plain, 'GET', configmaps(), g.token)
          : ask(
              plain,
              'POST',
              configmaps(),
              g.token,
              JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `burst-${i}` } }),
            ),
      );
    const revoked = await plain.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token });
    expect(revoked.status).toBe(200);
    slow.req.end(manifest.slice(20));
    const written = await slow.answer;
    await Promise.allSettled(calls);
    await Promise.all(watches.map((w) => w.done));
    await slow.done;

    // The write that was in flight completed: the client saw 201 and the object exists.
    expect(written.status).toBe(201);
    expect(kubectlAdmin(['get', 'configmap', 'in-flight', '-n', env.ns, '-o', 'name']).trim()).toBe(
      'configmap/in-flight',
    );

    const mine = () => plain.auditLines.slice(lineCountBefore).filter(ofGrant);
    // One line per call: forwarded (gateway) or refused (denial).
    const lines = await waitFor('a line per call', () =>
      mine().length === calls.length ? mine() : undefined,
    );
    const forwarded = lines.filter((l) => l.action === 'gateway');
    expect(forwarded.length).toBeGreaterThanOrEqual(4);
    // A call whose grant ended before it went out was never sent: no apiAuditId, and (below) no event.
    const notSent = forwarded.filter((l) => l.notSent !== undefined);
    for (const l of notSent)
      expect(l).toMatchObject({ status: 401, notSent: 'grant ended before it was sent' });
    const sent = forwarded.filter((l) => l.notSent === undefined);
    expect(sent.length).toBeGreaterThanOrEqual(4);
    const ids = sent.map((l) => l.apiAuditId as string);
    for (const id of ids) expect(id).toEqual(expect.any(String));
    expect(new Set(ids).size).toBe(ids.length);
    // Each id is in the API server's audit log, its final status the line's.
    const events = await waitFor('the API server to log every call', () => {
      const byId = new Map(
        readAudit()
          .filter((e) => e.stage === 'ResponseComplete' && ids.includes(e.auditID))
          .map((e) => [e.auditID, e]),
      );
      return byId.size === ids.length ? byId : undefined;
    });
    for (const l of sent)
      expect([l.verb, events.get(l.apiAuditId as string)!.responseStatus?.code]).toEqual([l.verb, l.status]);
    const unsentIds = new Set(notSent.map((l) => l.requestId));
    expect(readAudit().filter((e) => unsentIds.has(e.auditID))).toEqual([]);
    const create = sent.find((l) => l.verb === 'create' && l.bytesIn === Buffer.byteLength(manifest));
    expect(create).toMatchObject({ status: 201 });
    expect(create).not.toHaveProperty('incomplete');
    // The refused calls name the grant (as claimed: its token no longer proves it) and its run.
    for (const l of lines.filter((x) => x.action === 'denial'))
      expect(l).toMatchObject({
        claimedGrantId: g.grantId,
        github: expect.objectContaining({ repository: 'octo-org/octo-repo', run_attempt: '1' }),
      });
    console.log(
      `audit join: ${calls.length} calls in flight at revocation: ${sent.length} sent (each in the API server's ` +
        `audit log with its status), ${notSent.length} never sent, ${lines.length - forwarded.length} refused`,
    );
  }, 90_000);
});
