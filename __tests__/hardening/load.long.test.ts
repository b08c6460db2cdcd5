// Load and rate limiting (issue 7), all through the REAL broker bundle (build/broker/index.js) over
// HTTPS, against the real control plane under exactly the deploy/ RBAC:
//  - 500 exchanges at concurrency 32, then 500 revocations, each with its own grant's token:
//    no error at all, and no grant object left. The per-repository limit of that broker is raised
//    to the maximum the config allows (10,000/min), so a single repository can drive the load;
//    the default limit is exercised on its own below.
//  - the default limit (30/min): a burst of 40 from one repository gets explicit 429s with
//    Retry-After, never a 5xx, and nothing is created for them; another repository is unaffected.
//  - the action's real dist/main, rate limited on its first attempt, honours Retry-After and
//    succeeds (unit tests of the same: __tests__/action/main-run.test.ts "honours Retry-After on
//    429", __tests__/action/broker-client.test.ts "Retry-After on 429 becomes the retry wait").
//
// "Nothing left" means: no grant object (ServiceAccount, Role, RoleBinding) with the broker's
// label. The broker's JWT-use records (Leases in its own namespace, src/broker/grants/replay-ledger.ts)
// are EXPECTED to outlive a revoked grant: they keep a JWT single-use for as long as it could be
// presented (its exp + leeway + 60 s). They must be exactly one per exchanged JWT, none for a
// refused one, and the reaper must prune them once their JWT has expired: the last test waits for that.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { performance } from 'node:perf_hooks';
import { decodeJwt } from 'jose';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { grantIdFor } from '../../src/broker/naming.js';
import { kubectlAdmin, waitFor } from '../../test/support/cluster.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { jwtUseRecords, managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { REPO_ID } from '../../test/support/policy.js';
import { ensureActionBuilt } from '../../test/support/runner.js';

const OTHER_REPO_ID = '223456789';
const LOAD_EXCHANGES = 500;
const LOAD_CONCURRENCY = 32;
/** Objects per grant with a named ClusterRole: ServiceAccount, RoleBinding, self-revoke Role + RoleBinding. */
const OBJECTS_PER_GRANT = 4;
/** Short JWTs, so their use records expire (exp + 5 s leeway + 60 s) while this file runs. */
const JWT_SECONDS = 15;

let env: BrokerEnv;
const tally = { inputs: 0, faults: 0, leaked: 0 };
/** Grant ids of the load test, whose use records the last test waits to see pruned. */
const loadGrantIds: string[] = [];

/** The bundle over HTTPS; `limits` replaces the whole section (so an omitted field takes its default). */
async function startTestBroker(limits: Record<string, number>): Promise<RunningBroker> {
  return env.startBroker({ reaperIntervalSeconds: 1, config: { limits } });
}

const jwt = (claims: Record<string, string> = {}) => env.issuer.sign(claims, { expiresIn: JWT_SECONDS });
const grantIdOf = (token: string) =>
  grantIdFor(decodeJwt(token) as unknown as Parameters<typeof grantIdFor>[0]);

function exchange(broker: RunningBroker, token: string, namespace = env.ns) {
  tally.inputs += 1;
  return broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token,
    body: { namespace, role: 'viewer', ttlSeconds: 600 },
  });
}

function revoke(broker: RunningBroker, grant: { grantId: string; token: string }) {
  tally.inputs += 1;
  return broker.request<ErrorResponse>('DELETE', `/v1/grants/${grant.grantId}`, { token: grant.token });
}

/** Runs `count` jobs with at most `concurrency` in flight; returns each result and its latency (ms). */
async function runPool<T>(
  count: number,
  concurrency: number,
  job: (i: number) => Promise<T>,
): Promise<{ results: T[]; latencies: number[]; seconds: number }> {
  const results: T[] = new Array<T>(count);
  const latencies: number[] = new Array<number>(count);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      results[i] = await job(i);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { results, latencies, seconds: (performance.now() - started) / 1000 };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const describeLatency = (what: string, r: { latencies: number[]; seconds: number }) =>
  `${what}: ${r.latencies.length} in ${r.seconds.toFixed(1)} s = ${(r.latencies.length / r.seconds).toFixed(1)}/s, ` +
  `p50 ${percentile(r.latencies, 50).toFixed(0)} ms, p95 ${percentile(r.latencies, 95).toFixed(0)} ms, ` +
  `max ${Math.max(...r.latencies).toFixed(0)} ms`;

/** Statuses by count, e.g. {"200": 498, "429": 2}. */
function histogram(responses: { status: number }[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const r of responses) h[r.status] = (h[r.status] ?? 0) + 1;
  return h;
}

/**
 * How many grant objects carry the broker's label. By name only: 2,000 objects as JSON would
 * overflow the 1 MiB output buffer managedObjects() reads kubectl's answer into.
 */
const grantObjectCount = (): number =>
  kubectlAdmin([
    '-n',
    env.ns,
    'get',
    'serviceaccounts,roles,rolebindings',
    '-l',
    'app.kubernetes.io/managed-by=k8s-ephemeral-access',
    '-o',
    'name',
  ])
    .split('\n')
    .filter((l) => l !== '').length;

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({
    namespaces: ['load'],
    policy: { rules: [{ match: { repository_id: [REPO_ID, OTHER_REPO_ID] } }] },
  });
}, 120_000);

afterAll(async () => {
  // Counted before anything is torn down; the brokers and the issuer are stopped whatever happens.
  let leaked = -1;
  try {
    leaked = env ? grantObjectCount() : 0;
  } finally {
    tally.leaked = leaked;
    console.log(
      `load: inputs tried ${tally.inputs}, faults injected ${tally.faults}, objects leaked ${tally.leaked}`,
    );
    await env?.cleanup();
  }
  expect(leaked).toBe(0);
});

describe('load through the real bundle over HTTPS', () => {
  test(`${LOAD_EXCHANGES} exchanges at concurrency ${LOAD_CONCURRENCY}, then revocation of each with its own token: no error, no grant left`, async () => {
    const broker = await startTestBroker({
      bodyBytes: 16384,
      requestTimeoutMs: 10000,
      perRepositoryPerMinute: 10000,
    });
    // JWTs are minted as each request is sent (as runners do), so none expires in the queue.
    const ex = await runPool(LOAD_EXCHANGES, LOAD_CONCURRENCY, async () => exchange(broker, await jwt()));
    console.log(describeLatency('exchanges', ex));
    expect(histogram(ex.results)).toEqual({ 200: LOAD_EXCHANGES });
    const grants = ex.results.map((r) => ({ grantId: r.body.grantId, token: r.body.token }));
    loadGrantIds.push(...grants.map((g) => g.grantId));
    expect(new Set(loadGrantIds).size).toBe(LOAD_EXCHANGES);
    // The self-revoke Role + RoleBinding are created just after the answer (grants/grants.ts).
    await waitFor(
      'every object of the 500 grants',
      () => (grantObjectCount() === LOAD_EXCHANGES * OBJECTS_PER_GRANT ? true : undefined),
      60_000,
      500,
    );
    // One use record per exchanged JWT, none extra.
    const ledger = new Set(jwtUseRecords(env.rbac.brokerNamespace).map((l) => l.name));
    expect(loadGrantIds.filter((id) => !ledger.has(id))).toEqual([]);

    const rv = await runPool(grants.length, LOAD_CONCURRENCY, (i) => revoke(broker, grants[i]!));
    console.log(describeLatency('revocations', rv));
    expect(histogram(rv.results)).toEqual({ 200: LOAD_EXCHANGES });
    expect(managedObjects([env.ns])).toEqual([]);
    await waitFor('an audit line per revocation', () =>
      broker.audit().filter((l) => l.action === 'revocation').length >= LOAD_EXCHANGES ? true : undefined,
    );
    expect(broker.audit().filter((l) => l.action === 'revocation')).toHaveLength(LOAD_EXCHANGES);
    expect(broker.stderr.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });
});

describe('per-repository rate limit', () => {
  test('default limit (30/min): a burst of 40 from one repository gets explicit 429s with Retry-After, never a 5xx, nothing created for them; another repository is still served', async () => {
    const broker = await startTestBroker({ bodyBytes: 16384, requestTimeoutMs: 10000 }); // perRepositoryPerMinute: default
    const tokens = await Promise.all(Array.from({ length: 40 }, () => jwt()));
    tally.faults += 1;
    const burst = await Promise.all(tokens.map((t) => exchange(broker, t)));
    const h = histogram(burst);
    console.log(`burst of 40 at the default limit: ${JSON.stringify(h)}`);
    expect(Object.keys(h).sort()).toEqual(['200', '429']);
    // A full bucket of 30, plus at most the refill (0.5/s) during the burst.
    expect(h[200]).toBeGreaterThanOrEqual(30);
    expect(h[429]).toBeGreaterThanOrEqual(5);
    const limited = burst.filter((r) => r.status === 429);
    for (const r of limited) {
      expect(r.body.error).toMatchObject({
        code: 'ERR_RATE_LIMITED',
        message: 'too many requests; retry later',
      });
      expect(r.headers['retry-after']).toMatch(/^[12]$/); // whole seconds until a token is back (0.5/s)
    }
    const metrics = (await broker.internalGet('/metrics')).text;
    expect(metrics).toMatch(new RegExp(`^k8s_ea_rate_limited_total ${limited.length}$`, 'm'));
    await waitFor('an audit line per 429', () =>
      broker.audit().filter((l) => l.reason === 'rate_limited').length >= limited.length ? true : undefined,
    );
    expect(broker.audit().filter((l) => l.reason === 'rate_limited')).toHaveLength(limited.length);

    // Only the granted ones exist, and the refused JWTs were not even recorded as used.
    const grants = burst.filter((r) => r.status === 200).map((r) => r.body);
    await waitFor('every object of the granted ones', () =>
      grantObjectCount() === grants.length * OBJECTS_PER_GRANT ? true : undefined,
    );
    const ledger = new Set(jwtUseRecords(env.rbac.brokerNamespace).map((l) => l.name));
    const refusedIds = tokens.filter((_, i) => burst[i]!.status === 429).map(grantIdOf);
    expect(refusedIds.filter((id) => ledger.has(id))).toEqual([]);
    expect(grants.filter((g) => !ledger.has(g.grantId))).toEqual([]);

    // The limit is per repository: another repository is served while this one is limited.
    const other = await exchange(broker, await jwt({ repository_id: OTHER_REPO_ID }));
    expect(other.status).toBe(200);
    grants.push(other.body);

    const revoked = await Promise.all(grants.map((g) => revoke(broker, g)));
    expect(histogram(revoked)).toEqual({ 200: grants.length });
    expect(managedObjects([env.ns])).toEqual([]);
  });

  test("the action's real dist/main, rate limited on its first attempt, waits Retry-After and succeeds; post revokes", async () => {
    // 60/min refills one request a second, so Retry-After is 1 s and the test stays short.
    const broker = await startTestBroker({
      bodyBytes: 16384,
      requestTimeoutMs: 10000,
      perRepositoryPerMinute: 60,
    });
    const actionRunId = String(7_000_000 + Math.floor(Math.random() * 1_000_000));
    env.issuer.claims.run_id = actionRunId; // what the runner's ID-token endpoint puts in the action's JWTs
    const actionWasLimited = () =>
      broker
        .audit()
        .some((l) => l.reason === 'rate_limited' && (l.github as { run_id?: string }).run_id === actionRunId);

    // Other jobs of the same repository keep the bucket empty with requests the policy refuses
    // (403, nothing created) until the action's own request has been rate limited.
    let draining = true;
    const drain = async () => {
      while (draining && !actionWasLimited()) {
        const r = await exchange(broker, await jwt({ run_id: '1' }), 'kube-system');
        expect([403, 429]).toContain(r.status);
      }
    };
    const drainers = [drain(), drain()];
    await waitFor('the bucket to be empty', () =>
      broker.audit().some((l) => l.reason === 'rate_limited') ? true : undefined,
    );
    tally.faults += 1;

    const job = env.newJob();
    try {
      tally.inputs += 1;
      const main = await job.main(env.actionInputs(broker, { role: 'viewer', ttl: '600' }));
      draining = false;
      await Promise.all(drainers);
      expect(main.errors).toEqual([]);
      expect(main.exitCode).toBe(0);
      expect(actionWasLimited()).toBe(true);
      const waits = [
        ...main.log.matchAll(/^broker exchange: attempt \d\/6 failed: .*HTTP 429.*; retrying in (\d+) ms$/gm),
      ];
      expect(waits.length).toBeGreaterThanOrEqual(1);
      for (const w of waits) expect(Number(w[1])).toBeGreaterThanOrEqual(1000); // Retry-After: 1
      console.log(
        `action main: ${waits.length} x 429, waited ${waits.map((w) => `${w[1]} ms`).join(', ')}, then granted`,
      );
      const grantId = main.outputs['grant-id']!;
      await waitFor('every object of the action grant', () =>
        managedObjects([env.ns]).filter((o) => o.includes(grantId)).length === OBJECTS_PER_GRANT
          ? true
          : undefined,
      );

      tally.inputs += 1;
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.warnings).toEqual([]);
      expect(post.log).toContain(`Revoked grant ${grantId} through the broker.`);
      expect(managedObjects([env.ns])).toEqual([]);
    } finally {
      draining = false;
      await Promise.all(drainers);
      job.cleanup();
    }
  });
});

describe('what is left after the load', () => {
  test('no grant object; the JWT-use records of the load are pruned by the reaper once their JWTs expired', async () => {
    expect(managedObjects([env.ns])).toEqual([]);
    const load = new Set(loadGrantIds);
    // A record may outlive its expiry by one reaper pass (1 s here), never more; the load's all go.
    const stale = () =>
      jwtUseRecords(env.rbac.brokerNamespace).filter(
        (l) => load.has(l.name) || !(l.expiresAt > Date.now() - 3000),
      );
    await waitFor(
      'the reaper to prune the use records of expired JWTs',
      () => (stale().length === 0 ? true : undefined),
      150_000,
      1000,
    );
    // What remains belongs to JWTs that can still be presented (the action's 5-minute one).
    expect(jwtUseRecords(env.rbac.brokerNamespace).length).toBeGreaterThanOrEqual(1);
  });
});
