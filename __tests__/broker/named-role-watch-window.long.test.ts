// A named role nobody has touched for minutes is still followed by its watch. The API server's watch
// cache keeps a window of recent events (at least 75 s, then as many as its buffer holds); a watch
// from a resourceVersion older than that window fails at once as "too old". The role's own
// resourceVersion (its last write) leaves the window on a busy cluster: CI found the broker's
// watch failing on it over and over, each time with a warning, the edits then seen only by the
// re-reads between failures. Here the real API server is brought to that state first.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { parsePolicy } from '../../src/broker/policy/index.js';
import { applyClusterRole, kubectlAdmin, sleep, uniqueName, waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';

const SAFE_RULES = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }];
const SECRETS_RULE = { apiGroups: [''], resources: ['secrets'], verbs: ['get'] };
const ROLE = uniqueName('k8s-ea-test-unchanged');
const CHURN_LABEL = 'k8s-ephemeral-access.test/churn';
const CHURN_BATCH = 200;
/** Longer than the watch cache's shortest event window (75 s in the API server's cacher). */
const WINDOW_MS = 80_000;
const CHURN_DEADLINE_MS = 120_000;

let env: BrokerEnv;

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['watch-window'], rbac: { jobClusterRoles: [ROLE] } });
  applyClusterRole(ROLE, SAFE_RULES);
});

afterAll(async () => {
  kubectlAdmin(['delete', 'clusterrole', ROLE, '--ignore-not-found']);
  kubectlAdmin(['delete', 'clusterrole', '-l', CHURN_LABEL, '--ignore-not-found']);
  await env?.cleanup();
});

/** What a watch from this resourceVersion of the role gets: an ERROR event's text, or ''. */
function watchFrom(resourceVersion: string): string {
  const query = new URLSearchParams({
    watch: 'true',
    fieldSelector: `metadata.name=${ROLE}`,
    resourceVersion,
    timeoutSeconds: '1',
  });
  return kubectlAdmin(['get', '--raw', `/apis/rbac.authorization.k8s.io/v1/clusterroles?${query}`]);
}

/** Writes and deletes ClusterRoles (other than ROLE) until their events push ROLE's write out of the window. */
async function pushOutOfWatchWindow(resourceVersion: string): Promise<number> {
  await sleep(WINDOW_MS);
  const deadline = Date.now() + CHURN_DEADLINE_MS;
  let events = 0;
  while (!watchFrom(resourceVersion).includes('too old resource version')) {
    if (Date.now() > deadline)
      throw new Error(`a watch from ${resourceVersion} still works after ${events} events`);
    const roles = Array.from({ length: CHURN_BATCH }, (_, i) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: `${ROLE}-churn-${events + i}`, labels: { [CHURN_LABEL]: ROLE } },
    }));
    kubectlAdmin(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: roles }));
    kubectlAdmin(['delete', 'clusterrole', '-l', `${CHURN_LABEL}=${ROLE}`, '--wait=false']);
    events += 2 * CHURN_BATCH;
  }
  return events;
}

test('a role whose last write left the watch cache is followed by a watch: no warning, an edit seen', async () => {
  const resourceVersion = kubectlAdmin([
    'get',
    'clusterrole',
    ROLE,
    '-o',
    'jsonpath={.metadata.resourceVersion}',
  ]);
  const events = await pushOutOfWatchWindow(resourceVersion);
  console.log(
    `a watch from the role's resourceVersion is refused as too old after ${events} ClusterRole events`,
  );

  const broker = await env.startInProcessBroker({
    policy: parsePolicy(
      policyYaml({
        namespaces: [env.ns],
        roles: { app: { clusterRole: ROLE } },
        rules: [{ roles: ['app'], maxTtlSeconds: 600 }],
      }),
      'policy.yaml',
    ),
  });
  applyClusterRole(ROLE, [...SAFE_RULES, SECRETS_RULE]);
  await waitFor('the broker to see the edit', () =>
    broker.logLines.find((l) => l.msg === 'named role refused: grants of it are refused'),
  );
  // The messages, not a count: a failure then shows the API server's answer.
  expect(broker.logLines.filter((l) => l.level === 'warn' && String(l.msg).startsWith('watch on'))).toEqual(
    [],
  );
}, 300_000);
