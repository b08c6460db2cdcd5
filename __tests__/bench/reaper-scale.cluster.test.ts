// The reaper at scale against the real control plane: a few hundred complete grants (the broker's
// exact objects and JWT-use records, written by the bench's floor client under the broker's own
// RBAC, bench/lib/grant-floor.ts) have expired when a broker starts; its first pass deletes every
// one of them (counted), and nothing else: a live grant stays. How long it took is printed, not
// asserted (bench/scenarios/reaper.ts measures it on a quiet machine: `reap_lag_ms_1000`).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { benchClaims, floorGrant, type GrantTarget } from '../../bench/lib/grant-floor.js';
import { credentialsFromKubeconfig, MinimalKubeClient } from '../../bench/lib/kube-client.js';
import { coreApi, rbacApi, sleep, waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { REPO_ID } from '../../test/support/policy.js';

const GRANTS = Number(process.env.REAP_SCALE_GRANTS ?? 300);
const CREATE_CONCURRENCY = 16;
const SELECTOR = 'app.kubernetes.io/managed-by=k8s-ephemeral-access';

let env: BrokerEnv;
let kube: MinimalKubeClient;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['reap-scale'] });
  kube = new MinimalKubeClient(credentialsFromKubeconfig(env.rbac.kubeconfigPath));
}, 120_000);
afterAll(async () => {
  kube?.close();
  await env?.cleanup();
});

const grantRoots = async () =>
  (await coreApi().listNamespacedServiceAccount({ namespace: env.ns, labelSelector: SELECTOR })).items
    .filter((sa) => !sa.metadata?.deletionTimestamp)
    .map((sa) => sa.metadata!.name!);

test(`${GRANTS} expired grants are all reaped by one broker's passes; a live grant stays`, async () => {
  const target: GrantTarget = {
    namespace: env.ns,
    ledgerNamespace: env.rbac.brokerNamespace,
    clusterRole: 'k8s-ea-viewer',
    role: 'viewer',
    ruleName: 'main-pushes',
    ttlSeconds: 600,
    issuer: env.issuer.issuer,
  };
  const expiresAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
  const expired: string[] = [];
  const created = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CREATE_CONCURRENCY }, async () => {
      while (next < GRANTS) {
        next += 1;
        const g = await floorGrant(kube, target, benchClaims(target.issuer, REPO_ID), 'parallel', expiresAt);
        await g.settled;
        expired.push(g.grantId);
      }
    }),
  );
  const live = await floorGrant(kube, target, benchClaims(target.issuer, REPO_ID), 'parallel');
  await live.settled;
  console.log(`created ${GRANTS} grants in ${((Date.now() - created) / 1000).toFixed(1)} s`);
  expect(expired).toHaveLength(GRANTS);
  expect(await grantRoots()).toHaveLength(GRANTS + 1);
  await sleep(Math.max(0, expiresAt.getTime() - Date.now()));

  const started = Date.now();
  const broker = await env.startInProcessBroker({ reaperIntervalSeconds: 15 });
  let remaining = GRANTS + 1;
  // A generous bound against hangs only.
  await waitFor(
    'every expired grant to be reaped',
    async () => {
      remaining = (await grantRoots()).length;
      return remaining === 1 ? true : undefined;
    },
    300_000,
  );
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `reaped ${GRANTS} expired grants ${seconds.toFixed(1)} s after the broker started (${(GRANTS / seconds).toFixed(0)} grants/s, polled every few hundred ms)`,
  );
  const problems = broker.logLines.filter((l) => l.level === 'error' || l.level === 'warn');
  if (problems.length > 0)
    console.log(`broker warnings and errors (first 5 of ${problems.length}):`, problems.slice(0, 5));
  expect(await grantRoots()).toEqual([live.grantId]);
  const reapLines = broker.auditLines.filter((l) => l.action === 'reap');
  const at = reapLines.map((l) => Date.parse(String(l.time)) - started).sort((x, y) => x - y);
  console.log(
    `reap audit lines: first ${at[0]} ms, median ${at[at.length >> 1]} ms, last ${at.at(-1)} ms after start`,
  );
  const reaped = reapLines.map((l) => String(l.grantId));
  expect(reaped.sort()).toEqual([...expired].sort());
  // Every dependent of the reaped grants goes too (explicitly, or by garbage collection); the live
  // grant keeps its access and self-revoke objects.
  await waitFor('no object of a reaped grant to be left', async () => {
    const [roles, bindings] = await Promise.all([
      rbacApi().listNamespacedRole({ namespace: env.ns, labelSelector: SELECTOR }),
      rbacApi().listNamespacedRoleBinding({ namespace: env.ns, labelSelector: SELECTOR }),
    ]);
    const names = [...roles.items, ...bindings.items]
      .filter((o) => !o.metadata?.deletionTimestamp)
      .map((o) => o.metadata!.name!);
    return names.sort().join() ===
      [live.grantId, `${live.grantId}-revoke`, `${live.grantId}-revoke`].sort().join()
      ? true
      : undefined;
  });
  await broker.stop();
}, 600_000);
