// The issuer's JWKS goes down (issue 7): the broker over its real HTTPS server, the real token
// verifier against the local OIDC issuer (its JWKS endpoint switched to 503), a real policy file
// parsed by the real loader, and the real API server under exactly the deploy/ RBAC.
//
// What "cached keys keep working" means (src/broker/auth/issuer-keys.ts): keys older than the max
// age (10 min) are refreshed before use, and when that refresh fails the OLD keys keep serving, for
// as long as the outage lasts. They never expire on their own. What an outage does break is a key
// the broker has not seen: a cold cache (nothing fetched yet) or a kid from a key rotation. Those
// get a clear 503 ERR_UNAVAILABLE ("retry later"; reason jwks_unavailable in the log and audit),
// never a 401, because the broker cannot tell a rotated key from a made-up one while it cannot
// fetch, and a 401 would make the action give up on a job that a retry would rescue.
//
// The broker's time source is injected (the only thing not real here), so the production cache
// ages (the defaults: 10 min max age, 30 s between fetch attempts) are crossed without waiting. JWTs
// are minted at the same shifted time, so they are valid for the verifier.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { parsePolicy } from '../../src/broker/policy/index.js';
import { startOidcIssuer, type OidcIssuer } from '../../test/support/oidc-issuer.js';
import {
  freshNamespace,
  kubectlAdmin,
  kubectlStatus,
  tokenKubeconfig,
  waitFor,
} from '../../test/support/cluster.js';
import { installBrokerRbac, type BrokerRbac } from '../../test/support/deploy-rbac.js';
import type { BrokerResponse } from '../../test/support/broker-request.js';
import { startInProcessBroker } from '../../test/support/in-process-broker.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { policyYaml } from '../../test/support/policy.js';

const MINUTE = 60_000;
/** The verifier's defaults (token-verifier.ts), restated so the timeline below reads plainly. */
const MAX_AGE_MS = 10 * MINUTE;
const COOLDOWN_MS = 30_000;

let ns: { name: string; remove: () => Promise<void> };
let rbac: BrokerRbac;
let issuer: OidcIssuer;
/** Shift of the verifier's clock (and of the JWTs' iat/nbf/exp) against real time. */
let offsetMs = 0;
const tally = { inputs: 0, faults: 0, leaked: 0 };
const granted: { grantId: string; token: string; broker: TestBroker }[] = [];
const brokers: TestBroker[] = [];

type TestBroker = Awaited<ReturnType<typeof startInProcessBroker>>;

/**
 * The broker as runBroker wires it in production, in this process so its clock can be shifted.
 * Everything else (server, TLS, Kubernetes clients, reaper) is the real thing. The reaper passes
 * once, at the first broker's start, which then holds its lease for hours: on the shifted clock a
 * later pass would rightly reap the first grants (600 s) mid-test, while the checks below expect
 * the cluster's objects to change only by what an exchange creates.
 */
async function startTestBroker(): Promise<TestBroker> {
  const broker = await startInProcessBroker({
    issuer: issuer.issuer,
    policy: parsePolicy(policyYaml({ namespaces: [ns.name] }), 'policy.yaml'),
    rbac,
    reaperIntervalSeconds: 3600,
    shutdownGraceMs: 2000,
    now: () => Date.now() + offsetMs,
  });
  brokers.push(broker);
  return broker;
}

/** A JWT minted "now" on the shifted clock, with the current signing key (kid) unless header says otherwise. */
function jwtNow(header?: Record<string, unknown>): Promise<string> {
  const s = Math.round(offsetMs / 1000);
  return issuer.sign({}, { issuedAt: s, notBefore: s - 5, expiresIn: s + 300, header });
}

async function exchange(broker: TestBroker, jwt: string) {
  tally.inputs += 1;
  const r = await broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token: jwt,
    body: { namespace: ns.name, role: 'viewer', ttlSeconds: 600 },
  });
  if (r.status === 200) {
    granted.push({ grantId: r.body.grantId, token: r.body.token, broker });
    // The self-revoke Role + RoleBinding come just after the answer (grants/grants.ts): wait for all
    // four objects, so "nothing created" checks that follow compare against a settled cluster.
    const { grantId } = r.body;
    await waitFor(`the objects of ${grantId}`, () =>
      managedObjects([ns.name]).filter((o) => o.includes(grantId)).length === 4 ? true : undefined,
    );
  }
  return r;
}

const ledgerRecords = () =>
  kubectlAdmin([
    '-n',
    rbac.brokerNamespace,
    'get',
    'leases',
    '-l',
    'k8s-ephemeral-access.io/jwt-ledger=true',
    '-o',
    'name',
  ])
    .split('\n')
    .filter((l) => l !== '');

/** A refused exchange must be a clean 503 that names jwks_unavailable in the log and audit, and create nothing. */
async function expectJwksUnavailable(
  broker: TestBroker,
  jwt: string,
): Promise<BrokerResponse<ErrorResponse>> {
  const objectsBefore = managedObjects([ns.name]);
  const ledgerBefore = ledgerRecords();
  const r = await exchange(broker, jwt);
  expect({ status: r.status, error: r.body.error }).toEqual({
    status: 503,
    error: {
      code: 'ERR_UNAVAILABLE',
      message: 'temporarily unavailable; retry later',
      requestId: r.headers['x-request-id'],
    },
  });
  const requestId = r.headers['x-request-id'];
  expect(broker.logLines.find((l) => l.requestId === requestId)).toMatchObject({
    level: 'error',
    msg: 'exchange refused',
    code: 'ERR_UNAVAILABLE',
    reason: 'jwks_unavailable',
  });
  expect(broker.auditLines.find((l) => l.requestId === requestId)).toMatchObject({
    action: 'denial',
    reason: 'jwks_unavailable',
  });
  expect(managedObjects([ns.name])).toEqual(objectsBefore);
  expect(ledgerRecords()).toEqual(ledgerBefore);
  return r;
}

beforeAll(async () => {
  ns = await freshNamespace('jwks-outage');
  rbac = await installBrokerRbac([ns.name]);
  issuer = await startOidcIssuer();
});

afterAll(async () => {
  let left: string[] = ['(not counted)'];
  try {
    issuer?.setJwksAvailable(true);
    for (const g of granted)
      await g.broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token }).catch(() => undefined);
    left = ns ? managedObjects([ns.name]) : [];
  } finally {
    tally.leaked = left.length;
    console.log(
      `jwks-outage: inputs tried ${tally.inputs}, faults injected ${tally.faults}, objects leaked ${tally.leaked}`,
    );
    for (const b of brokers) await b.stop().catch(() => undefined);
    await issuer?.close();
    await rbac?.cleanup();
    await ns?.remove();
  }
  expect(left).toEqual([]);
});

describe('the issuer JWKS goes down while the broker runs', () => {
  let warm: TestBroker;
  /** Signed with the key the broker cached, before the rotation below. */
  let preRotation: string[] = [];

  test('warm cache: exchanges keep working during the outage, the issuer is not even asked while the keys are fresh', async () => {
    warm = await startTestBroker();
    expect((await exchange(warm, await jwtNow())).status).toBe(200); // fetches and caches the keys
    issuer.setJwksAvailable(false);
    tally.faults += 1;
    const fetchesAtOutage = issuer.jwksRequests();
    for (const shift of [0, 5 * MINUTE]) {
      offsetMs = shift;
      expect((await exchange(warm, await jwtNow())).status).toBe(200);
    }
    expect(issuer.jwksRequests()).toBe(fetchesAtOutage);
  });

  test('warm cache past its max age: the refresh fails and the cached keys keep serving (they do not expire on their own)', async () => {
    offsetMs = MAX_AGE_MS + MINUTE;
    preRotation = await Promise.all([jwtNow(), jwtNow()]);
    const before = issuer.jwksRequests();
    expect((await exchange(warm, await jwtNow())).status).toBe(200);
    expect(issuer.jwksRequests()).toBe(before + 1); // the stale keys were refreshed, and that failed
    // Inside the cooldown the issuer is not asked again, and the stale keys still serve.
    for (const jwt of preRotation) expect((await exchange(warm, jwt)).status).toBe(200);
    expect(issuer.jwksRequests()).toBe(before + 1);
  });

  test('a rotated key (kid not cached) during the outage: 503 jwks_unavailable, nothing created, also right after the failed refresh', async () => {
    await issuer.rotateKey();
    tally.faults += 1;
    const before = issuer.jwksRequests();
    // Still inside the cooldown of the failed refresh. Before the fix in issuer-keys.ts this was a
    // 401 jwt_unknown_kid, which the action does not retry: a job failed for an outage.
    await expectJwksUnavailable(warm, await jwtNow());
    expect(issuer.jwksRequests()).toBe(before);
    // Past the cooldown: the broker asks the issuer again (once), cannot fetch, still 503.
    offsetMs += COOLDOWN_MS + 1000;
    await expectJwksUnavailable(warm, await jwtNow());
    expect(issuer.jwksRequests()).toBe(before + 1);
  });

  test('cold cache: a broker started during the outage answers 503 and asks the issuer at most once per cooldown', async () => {
    const cold = await startTestBroker();
    const before = issuer.jwksRequests();
    await expectJwksUnavailable(cold, await jwtNow());
    await expectJwksUnavailable(cold, await jwtNow());
    await expectJwksUnavailable(cold, await jwtNow());
    expect(issuer.jwksRequests()).toBe(before + 1);
  });

  test('issuer back: after the cooldown both brokers grant again, with the rotated key, and the grant works in kubectl', async () => {
    issuer.setJwksAvailable(true);
    const [, cold] = brokers as [TestBroker, TestBroker];
    // Inside the cooldown after a failed fetch the brokers still say "retry later", not "rejected".
    await expectJwksUnavailable(cold, await jwtNow());
    offsetMs += COOLDOWN_MS + 1000;
    for (const b of [warm, cold]) {
      const r = await exchange(b, await jwtNow());
      expect(r.status).toBe(200);
      const kc = tokenKubeconfig(r.body.token, ns.name);
      try {
        expect(kubectlStatus(kc.path, ['get', 'configmaps']).ok).toBe(true);
      } finally {
        kc.cleanup();
      }
    }
  });

  test('with the issuer up and the keys just fetched, a made-up kid is still a 401 (the 503 is only for outages)', async () => {
    const before = managedObjects([ns.name]);
    const r = await exchange(warm, await jwtNow({ kid: 'made-up' }));
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('ERR_UNAUTHENTICATED');
    const requestId = r.headers['x-request-id'];
    expect(warm.auditLines.find((l) => l.requestId === requestId)).toMatchObject({
      reason: 'jwt_unknown_kid',
    });
    expect(managedObjects([ns.name])).toEqual(before);
  });
});
