// The gateway's grant table's sources (src/broker/gateway/grant-watch.ts) with a scripted watcher and
// lists: a watch that fails, however long it ran, leaves its namespace not synced (the gateway then
// answers 503) until the source is listed afresh, because events, a revocation among them, may have
// been missed since its last one; a watch the server ends in the usual way goes on without a list.
// The real API server's side: the gateway's cluster tests.
import { afterEach, expect, test } from '@jest/globals';
import { QUICK_FAILURE_MS, startGrantWatch, type GrantWatch } from '../../src/broker/gateway/grant-watch.js';
import { LiveGrants } from '../../src/broker/gateway/live-grants.js';
import type { K8sClients } from '../../src/broker/kube/clients.js';
import type { Watcher } from '../../src/broker/kube/watches.js';
import { createLogger } from '../../src/broker/logger.js';
import { sleep, waitFor } from '../../test/support/cluster.js';

const EMPTY = { items: [], metadata: { resourceVersion: '1' } };

/** Lists and watches of one job namespace and the ledger; the test ends watches and holds lists. */
function scriptedSources() {
  const state = {
    serviceAccountLists: 0,
    /** Set while a list after the first is held: calling it answers that list. */
    answerList: undefined as (() => void) | undefined,
    /** `done` of each watch on the namespace's ServiceAccounts, in the order they opened. */
    watches: [] as ((err?: unknown) => void)[],
  };
  const watcher: Watcher = {
    async watch(path, _query, _onEvent, done) {
      const controller = new AbortController();
      if (path.endsWith('/serviceaccounts')) state.watches.push(done);
      controller.signal.addEventListener('abort', () => done(new Error('aborted')));
      return controller;
    },
  };
  const k8s = {
    watcher,
    core: {
      listNamespacedServiceAccount: async () => {
        state.serviceAccountLists += 1;
        if (state.serviceAccountLists > 1) await new Promise<void>((r) => (state.answerList = r));
        return EMPTY;
      },
    },
    coordination: { listNamespacedLease: async () => EMPTY },
  } as unknown as Pick<K8sClients, 'core' | 'coordination' | 'watcher'>;
  return { k8s, state };
}

let watch: GrantWatch | undefined;
afterEach(() => watch?.stop());

const start = (k8s: Pick<K8sClients, 'core' | 'coordination' | 'watcher'>) =>
  startGrantWatch(k8s, new LiveGrants(), {
    namespaces: ['ns'],
    brokerNamespace: 'broker',
    logger: createLogger({ write: () => undefined }),
  });

test('after a watch that ran a while fails, the namespace is not synced until it is listed afresh', async () => {
  const { k8s, state } = scriptedSources();
  watch = await start(k8s);
  expect(watch.synced('ns')).toBe(true);
  // Past the quick-failure bound: not a watch that fails at once, one that worked, then broke.
  await sleep(QUICK_FAILURE_MS + 100);
  state.watches[0]!(new Error('connection reset'));
  await waitFor('the list afresh', () => (state.answerList ? true : undefined), 5_000, 10);
  expect(watch.synced('ns')).toBe(false);
  state.answerList!();
  await waitFor('synced again', () => (watch!.synced('ns') ? true : undefined), 5_000, 10);
  await waitFor('watching again', () => (state.watches.length === 2 ? true : undefined), 5_000, 10);
});

test('a watch the server ends in the usual way goes on from its version, synced throughout', async () => {
  const { k8s, state } = scriptedSources();
  watch = await start(k8s);
  state.watches[0]!();
  await waitFor('watching again', () => (state.watches.length === 2 ? true : undefined), 5_000, 10);
  expect(state.serviceAccountLists).toBe(1);
  expect(watch.synced('ns')).toBe(true);
});
