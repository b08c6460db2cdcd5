// Two broker replicas (issue 7): two processes of the REAL bundle (build/broker/index.js), same
// config, same policy, same ServiceAccount and namespace, each on its own HTTPS port, against the
// shared control plane. What a Deployment with replicas: 2 must guarantee:
//  (a) a JWT buys one grant, whichever replicas it is sent to, at the same moment or one after the
//      other, and also after that grant was revoked (the API server's name uniqueness and the
//      JWT-use records in grants/replay-ledger.ts, not each replica's memory, decide);
//  (b) one reaper at a time: the coordination.k8s.io Lease has one holder and every reap comes from
//      that holder's process; when the holder dies without releasing (SIGKILL), the other replica
//      takes the Lease once it expires and reaps what expires next;
//  (c) either replica revokes a grant the other issued, with the grant's token or an OIDC JWT.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CoordinationV1Api } from '@kubernetes/client-node';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { adminConfig, kubectlAdmin, sleep, waitFor } from '../../test/support/cluster.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { cleanupCountingLeaks, startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

const LEASE_NAME = 'k8s-ea-reaper';
/** The reaper's lease lasts max(15 s, 3 intervals): with a 1 s interval, 15 s. */
const LEASE_SECONDS = 15;

let env: BrokerEnv;
let replicas: [Replica, Replica];
/** A grant of the shortest TTL the policy allows (60 s), made first; the takeover test watches it. */
let shortGrant: ExchangeResponse;
const tally = { inputs: 0, faults: 0, races: 0 };

interface Replica {
  name: 'A' | 'B';
  broker: RunningBroker;
  /** Its Lease holder identity (the POD_NAME it was started with). */
  identity: string;
}

async function startReplica(name: Replica['name']): Promise<Replica> {
  const broker = await env.startBroker({ reaperIntervalSeconds: 1 });
  const replica: Replica = { name, broker, identity: '' };
  replica.identity = await waitFor('the broker to log its identity', () => {
    for (const line of broker.stderr) {
      const l = JSON.parse(line) as { msg?: string; identity?: string };
      if (l.msg === 'broker listening') return l.identity;
    }
    return undefined;
  });
  return replica;
}

const jwt = (claims: Record<string, string> = {}) => env.issuer.sign(claims, { expiresIn: 20 });

function exchange(r: Replica, token: string, ttlSeconds = 600) {
  tally.inputs += 1;
  return r.broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token,
    body: { namespace: env.ns, role: 'viewer', ttlSeconds },
  });
}

function revoke(r: Replica, grantId: string, token: string) {
  tally.inputs += 1;
  return r.broker.request<ErrorResponse>('DELETE', `/v1/grants/${grantId}`, { token });
}

/** The audit line of one request; it reaches us through the child's stdout pipe, so wait for it. */
const auditLineOf = (r: Replica, requestId: unknown) =>
  waitFor(`the audit line of request ${String(requestId)}`, () =>
    r.broker.audit().find((l) => l.requestId === requestId),
  );
const objectsOf = (grantId: string) => managedObjects([env.ns]).filter((o) => o.includes(grantId));
/** Waits for all four objects of a grant: the self-revoke pair is created just after the answer (grants/grants.ts). */
const completeGrant = (grantId: string) =>
  waitFor(`the objects of ${grantId}`, () => (objectsOf(grantId).length === 4 ? true : undefined));
const reapLines = (r: Replica) => r.broker.audit().filter((l) => l.action === 'reap');

async function leaseHolder(): Promise<string | undefined> {
  const coordination = adminConfig().makeApiClient(CoordinationV1Api);
  const lease = await coordination.readNamespacedLease({
    name: LEASE_NAME,
    namespace: env.rbac.brokerNamespace,
  });
  return lease.spec?.holderIdentity ?? undefined;
}

/** Samples the Lease holder every 200 ms until stopped. */
function watchLease(): { samples: (string | undefined)[]; stop: () => Promise<void> } {
  const samples: (string | undefined)[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      samples.push(await leaseHolder().catch(() => 'unreadable'));
      await sleep(200);
    }
  })();
  return {
    samples,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

/** Makes a real grant's expiry lie in the past, as if its TTL had run out. */
function expireNow(grantId: string): void {
  kubectlAdmin([
    '-n',
    env.ns,
    'annotate',
    'serviceaccount',
    grantId,
    'k8s-ephemeral-access.io/expires-at=2020-01-01T00:00:00Z',
    '--overwrite',
  ]);
}

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['replicas'] });
  replicas = [await startReplica('A'), await startReplica('B')];
  expect(replicas[0].identity).not.toBe(replicas[1].identity);
  const r = await exchange(replicas[0], await jwt(), 60);
  expect(r.status).toBe(200);
  shortGrant = r.body;
  await completeGrant(shortGrant.grantId);
}, 120_000);

afterAll(async () => {
  const left = await cleanupCountingLeaks(
    env,
    (leaked) =>
      `replicas: inputs tried ${tally.inputs} (${tally.races} same-JWT races), faults injected ${tally.faults}, ` +
      `objects leaked ${leaked}`,
  );
  expect(left).toEqual([]);
});

describe('(a) one JWT, one grant, across replicas', () => {
  test('the same JWT sent to both replicas at the same moment (twice to each): exactly one 200, the rest 401 jwt_replayed', async () => {
    const [a, b] = replicas;
    const granted: ExchangeResponse[] = [];
    for (let i = 0; i < 10; i += 1) {
      const token = await jwt();
      tally.races += 1;
      const answers = await Promise.all([a, b, a, b].map((r) => exchange(r, token)));
      const statuses = answers.map((x) => x.status).sort();
      expect(statuses).toEqual([200, 401, 401, 401]);
      for (const x of answers.filter((y) => y.status === 401))
        expect(x.body.error.code).toBe('ERR_UNAUTHENTICATED');
      const winner = answers.find((x) => x.status === 200)!.body;
      granted.push(winner);
      await completeGrant(winner.grantId); // and nothing else: the last check of this test
    }
    const denials = () =>
      [...a.broker.audit(), ...b.broker.audit()].filter((l) => l.action === 'denial').map((l) => l.reason);
    await waitFor('30 denial audit lines', () => (denials().length >= 30 ? true : undefined));
    expect(denials()).toEqual(Array.from({ length: 30 }, () => 'jwt_replayed'));
    for (const g of granted) expect((await revoke(a, g.grantId, g.token)).status).toBe(200);
    expect(managedObjects([env.ns]).filter((o) => !o.includes(shortGrant.grantId))).toEqual([]);
  });

  test('one after the other, and after the grant was revoked: the second replica refuses it too, and creates nothing', async () => {
    const [a, b] = replicas;
    const token = await jwt();
    const first = await exchange(a, token);
    expect(first.status).toBe(200);
    await completeGrant(first.body.grantId);
    const before = managedObjects([env.ns]);
    for (const r of [b, a]) expect((await exchange(r, token)).status).toBe(401);
    expect(managedObjects([env.ns])).toEqual(before);

    expect((await revoke(a, first.body.grantId, first.body.token)).status).toBe(200);
    expect(objectsOf(first.body.grantId)).toEqual([]);
    for (const r of [b, a]) {
      const again = await exchange(r, token);
      expect(again.status).toBe(401);
      expect(await auditLineOf(r, again.headers['x-request-id'])).toMatchObject({
        action: 'denial',
        reason: 'jwt_replayed',
      });
    }
    expect(objectsOf(first.body.grantId)).toEqual([]);
  });
});

describe('(c) either replica revokes what the other issued', () => {
  test('issued by A, revoked at B with the grant token; issued by B, revoked at A with an OIDC JWT of the same run', async () => {
    const [a, b] = replicas;
    const byToken = await exchange(a, await jwt());
    expect(byToken.status).toBe(200);
    await completeGrant(byToken.body.grantId);
    const r1 = await revoke(b, byToken.body.grantId, byToken.body.token);
    expect(r1.status).toBe(200);
    expect(objectsOf(byToken.body.grantId)).toEqual([]);
    expect(await auditLineOf(b, r1.headers['x-request-id'])).toMatchObject({
      action: 'revocation',
      grantId: byToken.body.grantId,
    });

    const run = { run_id: String(8_000_000 + Math.floor(Math.random() * 1_000_000)), run_attempt: '1' };
    const byOidc = await exchange(b, await jwt(run));
    expect(byOidc.status).toBe(200);
    await completeGrant(byOidc.body.grantId);
    const r2 = await revoke(a, byOidc.body.grantId, await jwt(run));
    expect(r2.status).toBe(200);
    expect(objectsOf(byOidc.body.grantId)).toEqual([]);
    expect(await auditLineOf(a, r2.headers['x-request-id'])).toMatchObject({
      action: 'revocation',
      grantId: byOidc.body.grantId,
    });
  });
});

describe('(b) one reaper at a time', () => {
  test('the Lease has one holder; every reap comes from its process, none from the other', async () => {
    const holderId = await waitFor('a reaper Lease holder', () => leaseHolder().catch(() => undefined));
    const holder = replicas.find((r) => r.identity === holderId)!;
    const other = replicas.find((r) => r !== holder)!;
    expect(holder).toBeDefined();
    const watch = watchLease();
    try {
      // Six real grants from both replicas, made expired in two batches a few reaper passes apart.
      const grants: ExchangeResponse[] = [];
      for (const r of [...replicas, ...replicas, ...replicas]) {
        const x = await exchange(r, await jwt());
        expect(x.status).toBe(200);
        await completeGrant(x.body.grantId);
        grants.push(x.body);
      }
      for (const batch of [grants.slice(0, 3), grants.slice(3)]) {
        batch.forEach((g) => expireNow(g.grantId));
        await waitFor('the expired batch to be reaped', () =>
          batch.every((g) => objectsOf(g.grantId).length === 0) ? true : undefined,
        );
        await sleep(2000); // a few more passes of both reapers
      }
      const reapedIds = reapLines(holder).map((l) => l.grantId);
      expect(reapedIds).toEqual(expect.arrayContaining(grants.map((g) => g.grantId)));
      expect(reapLines(other)).toEqual([]);
    } finally {
      await watch.stop();
    }
    expect(watch.samples.length).toBeGreaterThan(10);
    expect(new Set(watch.samples)).toEqual(new Set([holderId]));
    // The short grant is not due yet: the takeover test below needs it.
    expect(objectsOf(shortGrant.grantId)).toHaveLength(4);
  });

  test('kill the holder (SIGKILL, Lease not released): the other replica takes the Lease and reaps the 60 s grant', async () => {
    const holderId = await leaseHolder();
    const holder = replicas.find((r) => r.identity === holderId)!;
    const survivor = replicas.find((r) => r !== holder)!;
    expect(objectsOf(shortGrant.grantId)).toHaveLength(4);
    await holder.broker.kill();
    tally.faults += 1;
    // The dead holder's Lease stays until it expires (15 s after its last renewal), then moves.
    await waitFor(
      'the survivor to take the Lease',
      async () => ((await leaseHolder()) === survivor.identity ? true : undefined),
      LEASE_SECONDS * 1000 + 15_000,
      200,
    );
    const tookOverAt = Date.now();
    const due = Date.parse(shortGrant.expiresAt);
    console.log(
      `lease moved from replica ${holder.name} to ${survivor.name}; the 60 s grant is due ` +
        `${((due - tookOverAt) / 1000).toFixed(1)} s later`,
    );
    // Taken over before the grant expired, so nobody but the survivor can have reaped it.
    expect(due).toBeGreaterThan(tookOverAt);
    await waitFor(
      'the survivor to reap the 60 s grant',
      () => (objectsOf(shortGrant.grantId).length === 0 ? true : undefined),
      due - Date.now() + 20_000,
      500,
    );
    await waitFor('the reap audit line of the survivor', () =>
      reapLines(survivor).some((l) => l.grantId === shortGrant.grantId) ? true : undefined,
    );
    expect(reapLines(holder).map((l) => l.grantId)).not.toContain(shortGrant.grantId);
    expect(managedObjects([env.ns])).toEqual([]);
  });
});
