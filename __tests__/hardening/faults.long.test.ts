// Faults against a PRIVATE control plane (support/private-control-plane.ts), never the shared one: the API
// server frozen (SIGSTOP) and killed during exchanges, the broker SIGKILLed mid-exchange, and the
// API server restarted under active grants. After every fault: clear 503s (never a hang, never a
// grant that half exists), and once the cluster is back and the reaper ran, nothing left behind.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { kubectlStatus, tokenKubeconfig, waitFor } from '../../test/support/cluster.js';
import type { RunningBroker } from '../../test/support/broker.js';
import type { BrokerResponse } from '../../test/support/broker-request.js';
import { jwtUseRecords, managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import {
  clusterEnv,
  startPrivateControlPlane,
  type PrivateControlPlane,
} from './support/private-control-plane.js';

let cp: PrivateControlPlane;
/** One namespace per scenario, so what each fault left behind is counted on its own. */
const SCENARIOS = ['freeze', 'apiserver-kill', 'broker-kill', 'restart'] as const;
type Scenario = (typeof SCENARIOS)[number];
let env: BrokerEnv;
const nsOf = (s: Scenario): string => env.namespaces[SCENARIOS.indexOf(s)]!;
const tally = { inputs: 0, faults: 0, leaked: 0 };

beforeAll(async () => {
  cp = await startPrivateControlPlane();
  // Every cluster helper in this file (admin client, kubectl, managedObjects) now targets it.
  Object.assign(process.env, clusterEnv(cp));
  env = await startBrokerEnv({ namespaces: SCENARIOS.map((s) => `faults-${s}`) });
}, 240_000);

afterAll(async () => {
  const left = cp && env ? managedObjects(env.namespaces) : [];
  tally.leaked = left.length;
  console.log(
    `faults: inputs tried ${tally.inputs}, faults injected ${tally.faults}, objects leaked ${tally.leaked}`,
  );
  // Not env.cleanup(): removing the private control plane removes the namespaces and RBAC with it.
  await env?.issuer.close();
  await cp?.remove();
  expect(left).toEqual([]);
});

const startTestBroker = () => env.startBroker({ reaperIntervalSeconds: 1 });

/** Short-lived JWTs, so the broker's JWT-use records (kept until exp + leeway + 60 s) expire soon too. */
const jwt = () => env.issuer.sign({}, { expiresIn: 20 });
/** The shortest grant a policy allows (60 s): what a failed exchange may leave is reaped soon. */
const SHORT = { role: 'viewer', ttlSeconds: 60 };

function exchange(broker: RunningBroker, scenario: Scenario, token: string, ttlSeconds = 60) {
  tally.inputs += 1;
  return broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token,
    body: { namespace: nsOf(scenario), ...SHORT, ttlSeconds },
  });
}
/** What each scenario left in the cluster right after its fault, before any reaping. */
const leftAfterFault: Partial<Record<Scenario, number>> = {};

function expectClean503(r: BrokerResponse<ErrorResponse>): void {
  expect(r.status).toBe(503);
  expect(r.body.error).toMatchObject({
    code: 'ERR_UNAVAILABLE',
    message: 'temporarily unavailable; retry later',
  });
}

describe('the API server fails during exchanges', () => {
  test('frozen (SIGSTOP) mid-burst: every request answers 200 or a clear 503, never hangs', async () => {
    const broker = await startTestBroker();
    const ns = nsOf('freeze');
    try {
      expect((await exchange(broker, 'freeze', await jwt())).status).toBe(200);
      // A burst in flight; the API server stops answering once its first objects appear.
      const before = managedObjects([ns]).length;
      const tokens = await Promise.all(Array.from({ length: 12 }, () => jwt()));
      const burst = tokens.map((t) => exchange(broker, 'freeze', t));
      await waitFor(
        'the burst to reach the cluster',
        () => (managedObjects([ns]).length > before ? true : undefined),
        30_000,
        10,
      );
      cp.freeze();
      tally.faults += 1;
      const frozen = await exchange(broker, 'freeze', await jwt()); // starts after the freeze: must not hang
      expectClean503(frozen);
      const results = await Promise.all(burst);
      for (const r of results) expect([200, 503]).toContain(r.status);
      for (const r of results.filter((x) => x.status === 503)) expectClean503(r);
      expect(
        broker
          .audit()
          .filter((l) => l.action === 'denial')
          .map((l) => l.reason),
      ).toContain('cluster_unavailable');
      cp.thaw();
      leftAfterFault.freeze = managedObjects([ns]).length;
      console.log(
        `frozen API server: burst answered ${results.filter((r) => r.status === 200).length} x 200, ` +
          `${results.filter((r) => r.status === 503).length} x 503; ${leftAfterFault.freeze} objects until reaped`,
      );
      // Once back, the same broker serves again.
      await waitFor('the broker to grant again', async () =>
        (await exchange(broker, 'freeze', await jwt())).status === 200 ? true : undefined,
      );
    } finally {
      cp.thaw();
      await broker.stop();
    }
  });

  test('killed: exchanges answer 503 at once; after the restart the broker grants again', async () => {
    const broker = await startTestBroker();
    try {
      await cp.kill();
      tally.faults += 1;
      expectClean503(await exchange(broker, 'apiserver-kill', await jwt()));
      expect((await broker.request('GET', '/healthz')).status).toBe(200);
      await cp.start();
      leftAfterFault['apiserver-kill'] = managedObjects([nsOf('apiserver-kill')]).length;
      await waitFor('the broker to grant again', async () =>
        (await exchange(broker, 'apiserver-kill', await jwt())).status === 200 ? true : undefined,
      );
    } finally {
      await broker.stop();
    }
  });
});

describe('the broker dies mid-exchange', () => {
  test('SIGKILL during a burst of 20 leaves partial grants behind (the reaper test below removes them)', async () => {
    const ns = nsOf('broker-kill');
    const first = await startTestBroker();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => jwt()));
    const burst = tokens.map((t) =>
      exchange(first, 'broker-kill', t).then(
        (r) => r.status,
        () => 'connection lost',
      ),
    );
    // Kill once the broker's work is visibly under way in the cluster.
    await waitFor(
      'the first objects of the burst',
      () => (managedObjects([ns]).length > 0 ? true : undefined),
      30_000,
      10,
    );
    await first.kill();
    tally.faults += 1;
    const outcomes = await Promise.all(burst);
    leftAfterFault['broker-kill'] = managedObjects([ns]).length;
    console.log(
      `broker SIGKILLed: ${outcomes.filter((o) => o === 200).length} granted, ` +
        `${outcomes.filter((o) => o !== 200).length} cut off, ${leftAfterFault['broker-kill']} objects left behind`,
    );
    expect(leftAfterFault['broker-kill']).toBeGreaterThan(0);
  });
});

describe('the API server restarts while grants are active', () => {
  test('revocation with the grant token and with an OIDC JWT still works after the restart', async () => {
    const ns = nsOf('restart');
    const broker = await startTestBroker();
    try {
      const byToken = await exchange(broker, 'restart', await jwt(), 600);
      const runClaims = { run_id: '424242', run_attempt: '1' };
      tally.inputs += 1;
      const byOidc = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
        token: await env.issuer.sign(runClaims, { expiresIn: 20 }),
        body: { namespace: ns, role: 'viewer', ttlSeconds: 600 },
      });
      const byReaper = await exchange(broker, 'restart', await jwt(), 60);
      for (const r of [byToken, byOidc, byReaper]) expect(r.status).toBe(200);
      const kc = tokenKubeconfig(byToken.body.token, ns);
      try {
        await waitFor('the grant to work', () =>
          kubectlStatus(kc.path, ['get', 'pods']).ok ? true : undefined,
        );
        // The broker creates each grant's self-revoke objects just after answering: let them exist
        // before the fault, so the restart is what this test puts to the proof.
        await waitFor('all objects of the three grants', () =>
          managedObjects([ns]).length === 12 ? true : undefined,
        );
        await cp.kill();
        await cp.start();
        tally.faults += 1;
        leftAfterFault.restart = managedObjects([ns]).length;
        expect(leftAfterFault.restart).toBe(12); // three grants of four objects each survived the restart
        // The token issued before the restart still works: same signing key, same etcd data.
        await waitFor('the grant to work after the restart', () =>
          kubectlStatus(kc.path, ['get', 'pods']).ok ? true : undefined,
        );
        const r1 = await broker.request('DELETE', `/v1/grants/${byToken.body.grantId}`, {
          token: byToken.body.token,
        });
        expect(r1.status).toBe(200);
        const r2 = await broker.request('DELETE', `/v1/grants/${byOidc.body.grantId}`, {
          // Short like every JWT here: a JWT spent on a revocation is recorded too, and the last
          // test waits for every record to be pruned.
          token: await env.issuer.sign(runClaims, { expiresIn: 20 }),
        });
        expect(r2.status).toBe(200);
        expect(managedObjects([ns]).filter((o) => !o.includes(byReaper.body.grantId))).toEqual([]);
        await waitFor('the revoked token to be refused', () =>
          kubectlStatus(kc.path, ['get', 'pods']).ok ? undefined : true,
        );
      } finally {
        kc.cleanup();
      }
    } finally {
      await broker.stop();
    }
  });
});

describe('after all faults', () => {
  test('a fresh broker reaps everything every fault left behind, and prunes the JWT-use records', async () => {
    const broker = await startTestBroker();
    try {
      console.log(`objects left right after each fault: ${JSON.stringify(leftAfterFault)}`);
      await waitFor(
        'every grant reaped',
        () => (managedObjects(env.namespaces).length === 0 ? true : undefined),
        150_000,
        1000,
      );
      await waitFor(
        'JWT-use records pruned',
        () => (jwtUseRecords(env.rbac.brokerNamespace).length === 0 ? true : undefined),
        150_000,
        1000,
      );
      const reaped = broker.audit().filter((l) => l.action === 'reap');
      console.log(`reaper: ${reaped.length} grants reaped after the faults`);
      expect(reaped.length).toBeGreaterThan(0);
      for (const s of SCENARIOS) expect(managedObjects([nsOf(s)])).toEqual([]);
    } finally {
      await broker.stop();
    }
  });
});
