// Role vetting (src/broker/grants/role-vetting.ts) against a watch that lags: its watches open
// without a resourceVersion, so the API server starts each with the role as its watch cache holds
// it, which can be older than the fresh reading made just before. Such a stale event must not undo
// a refusal the reading made. Over real HTTPS from a scripted server, through the broker's own
// watches (kube/pooled-watch.ts) and through client-node's Watch (kept for a kubeconfig with a
// proxy); the
// real API server's side is __tests__/broker/named-roles.cluster.test.ts and
// named-role-watch-window.long.test.ts.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watch, type V1ClusterRole } from '@kubernetes/client-node';
import { startRoleVetting, type RoleVetting } from '../../../src/broker/grants/role-vetting.js';
import type { K8sClients } from '../../../src/broker/kube/clients.js';
import { pooledWatcher } from '../../../src/broker/kube/pooled-watch.js';
import type { Watcher } from '../../../src/broker/kube/watches.js';
import { createLogger } from '../../../src/broker/logger.js';
import type { Grantable } from '../../../src/broker/types.js';
import { hotPathOver, scriptedKubeConfig } from '../../../test/support/scripted-api-server.js';
import { selfSignedCert } from '../../../test/support/tls.js';

const NAME = 'app';
const SAFE = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }];
const DANGEROUS = [...SAFE, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }];
const role = (resourceVersion: string, rules: typeof SAFE): V1ClusterRole => ({
  metadata: { name: NAME, resourceVersion },
  rules,
});

/** The fresh readings, in order (the last repeats), and what each watch sends when it opens. */
const readings = [role('10', SAFE), role('20', DANGEROUS)];
const watchOpenings: (V1ClusterRole | 'end')[] = ['end', role('10', SAFE)];
let reads = 0;
let watches = 0;
let server: Server;
let url: string;
let ca: Buffer;

beforeAll(async () => {
  const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'k8s-ea-vetting-')));
  server = createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (req, res) => {
    const opening = watchOpenings[Math.min(watches++, watchOpenings.length - 1)]!;
    res.writeHead(200, { 'content-type': 'application/json' });
    // The first watch ends at once (the loop then reads afresh); the next one opens with the stale role.
    if (opening === 'end') res.end();
    else res.write(`${JSON.stringify({ type: 'ADDED', object: opening })}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ca = tls.ca;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const WATCHERS: [string, () => Watcher][] = [
  ["the broker's own watch", () => pooledWatcher(hotPathOver(url, ca).connection)],
  ["client-node's Watch", () => new Watch(scriptedKubeConfig(url, ca))],
];

test.each(WATCHERS)(
  '%s: a watch opening with the role older than the last reading does not undo its refusal',
  async (_name, watcherOf) => {
    reads = 0;
    watches = 0;
    const watcher = watcherOf();
    const messages: string[] = [];
    const k8s = {
      rbac: { readClusterRole: async () => readings[Math.min(reads++, readings.length - 1)] },
      watcher,
    } as unknown as Pick<K8sClients, 'rbac' | 'watcher'>;
    const logger = createLogger({ write: (l) => void messages.push((JSON.parse(l) as { msg: string }).msg) });
    let vetting: RoleVetting | undefined;
    try {
      vetting = await startRoleVetting(k8s, [{ kind: 'ClusterRole', name: NAME }], logger);
      const grantable = { roleRef: { kind: 'ClusterRole', name: NAME }, namespace: 'ns' } as Grantable;
      const deadline = Date.now() + 10_000;
      while (watches < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(watches).toBe(2);
      // The stale ADDED reached the client: give it the time to be applied, were it applied.
      await new Promise((r) => setTimeout(r, 300));
      expect(vetting.refusal(grantable)?.reason).toBe('role_dangerous');
      expect(messages.filter((m) => m.startsWith('named role'))).toEqual([
        'named role refused: grants of it are refused',
      ]);
    } finally {
      vetting?.stop();
    }
  },
);
