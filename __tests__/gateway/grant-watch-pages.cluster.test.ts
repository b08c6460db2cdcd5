// The grant watch's first list, read in pages against the real API server: with a page smaller
// than the number of grants, every grant and its JWT-use record still reach the table (the API
// server's continue tokens followed to the end), and every page asked for carried the limit.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { decodeJwt } from 'jose';
import type { ExchangeResponse } from '../../src/shared/api.js';
import { startGrantWatch } from '../../src/broker/gateway/grant-watch.js';
import { LiveGrants } from '../../src/broker/gateway/live-grants.js';
import { createK8sClients, loadKubeConfig } from '../../src/broker/kube/clients.js';
import { createLogger } from '../../src/broker/logger.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

let env: BrokerEnv;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['gw-pages'], policy: { rules: [{ roles: ['deployer'] }] } });
}, 120_000);

afterAll(() => env?.cleanup());

const GRANTS = 5;
const PAGE = 2;

test('every grant reaches the table when the first list comes in pages', async () => {
  const broker = await env.startInProcessBroker();
  const uids: string[] = [];
  for (let i = 0; i < GRANTS; i += 1) {
    const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
      token: await env.issuer.sign(),
      body: { namespace: env.ns, role: 'deployer', ttlSeconds: 600 },
    });
    expect(r.status).toBe(200);
    const claims = decodeJwt(r.body.token) as { 'kubernetes.io': { serviceaccount: { uid: string } } };
    uids.push(claims['kubernetes.io'].serviceaccount.uid);
  }

  const kc = loadKubeConfig(env.rbac.kubeconfigPath);
  const k8s = createK8sClients(kc);
  const limits: (number | undefined)[] = [];
  const counted = {
    watcher: k8s.watcher,
    core: Object.assign(Object.create(k8s.core) as typeof k8s.core, {
      listNamespacedServiceAccount: (p: Parameters<typeof k8s.core.listNamespacedServiceAccount>[0]) => {
        limits.push(p.limit);
        return k8s.core.listNamespacedServiceAccount(p);
      },
    }),
    coordination: Object.assign(Object.create(k8s.coordination) as typeof k8s.coordination, {
      listNamespacedLease: (p: Parameters<typeof k8s.coordination.listNamespacedLease>[0]) => {
        limits.push(p.limit);
        return k8s.coordination.listNamespacedLease(p);
      },
    }),
  };
  const table = new LiveGrants();
  const watch = await startGrantWatch(counted, table, {
    namespaces: [env.ns],
    brokerNamespace: env.rbac.brokerNamespace,
    logger: createLogger({ write: () => undefined }),
    listPageSize: PAGE,
  });
  try {
    expect(watch.synced(env.ns)).toBe(true);
    expect(table.size).toBe(GRANTS);
    for (const uid of uids) expect(table.live(uid)).toMatchObject({ uid, namespace: env.ns });
    // Both lists took ceil(5 / 2) = 3 pages or more (the ledger may hold other files' records).
    expect(limits.length).toBeGreaterThanOrEqual(2 * Math.ceil(GRANTS / PAGE));
    expect(limits.every((limit) => limit === PAGE)).toBe(true);
  } finally {
    watch.stop();
  }
}, 120_000);
