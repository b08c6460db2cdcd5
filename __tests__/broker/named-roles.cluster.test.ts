// Named roles vetted for real (issue 10, item 3), against the real control plane under the deploy/
// RBAC: the broker reads every role its policy binds before it listens and refuses to start on a
// missing, aggregated or dangerous one; afterwards it watches them, and a role edited to become
// dangerous is refused per grant within seconds, then granted again once restored.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { parsePolicy } from '../../src/broker/policy/index.js';
import { applyClusterRole, kubectlAdmin, uniqueName, waitFor } from '../../test/support/cluster.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';

const SAFE_RULES = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }];
const SECRETS_RULE = { apiGroups: [''], resources: ['secrets'], verbs: ['get'] };
/** A ClusterRole the policy binds and the test edits; the broker may bind and read it. */
const EDITABLE = uniqueName('k8s-ea-test-editable');
/** A ClusterRole that reads Secrets from the start, as crossplane-admin or cert-manager-edit would. */
const SECRET_READER = uniqueName('k8s-ea-test-secret-reader');
/** Named in the policy and readable, but never created. */
const MISSING = uniqueName('k8s-ea-test-missing');

let env: BrokerEnv;

/** The policy: the default rule, granting one role `app` bound to this ClusterRole. */
const policyFor = (clusterRole: string) =>
  policyYaml({
    namespaces: [env.ns],
    roles: { app: { clusterRole } },
    rules: [{ roles: ['app'], maxTtlSeconds: 600 }],
  });

beforeAll(async () => {
  // As an admin lists the policy's roles in deploy/ (bind and read), here including `view`.
  env = await startBrokerEnv({
    namespaces: ['named-roles'],
    rbac: { jobClusterRoles: [EDITABLE, SECRET_READER, MISSING, 'view'] },
  });
  applyClusterRole(EDITABLE, SAFE_RULES);
  applyClusterRole(SECRET_READER, [...SAFE_RULES, SECRETS_RULE]);
});

afterAll(async () => {
  kubectlAdmin(['delete', 'clusterrole', EDITABLE, SECRET_READER, '--ignore-not-found']);
  await env?.cleanup();
});

describe('at start', () => {
  test('a policy binding `view` (aggregated) stops the broker bundle with an error naming it', async () => {
    const started = env.startBroker({ policyYaml: policyFor('view') });
    const error = await started.then(
      (b) => {
        void b.kill();
        return new Error('the broker started');
      },
      (e: unknown) => e as Error,
    );
    expect(error.message).toMatch(/^broker exited with 1 before ready/);
    expect(error.message).toContain('ClusterRole \\"view\\": has an aggregationRule');
  });

  test.each([
    [
      SECRET_READER,
      /ClusterRole "[^"]+": rules\[1\] \(apiGroups \[""\] resources \["secrets"\] verbs \["get"\]\): reads or writes Secrets/,
    ],
    [MISSING, /ClusterRole "[^"]+": does not exist/],
  ])('a policy binding %s is refused before listening', async (role, message) => {
    await expect(
      env.startInProcessBroker({ policy: parsePolicy(policyFor(role), 'policy.yaml') }),
    ).rejects.toThrow(message);
  });
});

describe('after start', () => {
  let broker: InProcessBroker;
  beforeAll(async () => {
    broker = await env.startInProcessBroker({ policy: parsePolicy(policyFor(EDITABLE), 'policy.yaml') });
  });

  const exchange = async () =>
    broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
      token: await env.issuer.sign(),
      body: { namespace: env.ns, role: 'app' },
    });

  test('a role edited to add secrets is refused per grant within seconds, and granted again once restored', async () => {
    expect((await exchange()).status).toBe(200);

    const editedAt = Date.now();
    applyClusterRole(EDITABLE, [...SAFE_RULES, SECRETS_RULE]);
    await waitFor('the broker to see the edit', () =>
      broker.logLines.find((l) => l.msg === 'named role refused: grants of it are refused'),
    );
    const noticedMs = Date.now() - editedAt;
    console.log(`named role edit noticed after ${noticedMs} ms`);
    expect(noticedMs).toBeLessThan(5_000);

    const refused = await exchange();
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ERR_FORBIDDEN');
    const requestId = refused.headers['x-request-id'];
    expect(broker.auditLines).toContainEqual(
      expect.objectContaining({ action: 'denial', requestId, reason: 'role_dangerous', role: 'app' }),
    );
    expect(broker.logLines).toContainEqual(
      expect.objectContaining({
        msg: 'exchange refused',
        requestId,
        reason: 'role_dangerous',
        detail: expect.stringContaining(`ClusterRole "${EDITABLE}" rules[1]`),
      }),
    );

    applyClusterRole(EDITABLE, SAFE_RULES);
    await waitFor('the broker to see the restore', () =>
      broker.logLines.find((l) => l.msg === 'named role may be granted again'),
    );
    expect((await exchange()).status).toBe(200);
    // Seen through the watch (allowed by resourceNames with a name field selector), not by re-reading.
    expect(broker.logLines.filter((l) => l.level === 'warn' && String(l.msg).startsWith('watch on'))).toEqual(
      [],
    );
  });

  test('a role deleted after start is refused per grant', async () => {
    kubectlAdmin(['delete', 'clusterrole', EDITABLE]);
    await waitFor('the broker to see the deletion', () => broker.logLines.find((l) => l.state === 'missing'));
    const r = await exchange();
    expect(r.status).toBe(403);
    expect(broker.auditLines).toContainEqual(
      expect.objectContaining({ requestId: r.headers['x-request-id'], reason: 'role_missing' }),
    );
    applyClusterRole(EDITABLE, SAFE_RULES);
    await waitFor('the broker to see it again', () =>
      broker.logLines.filter((l) => l.msg === 'named role may be granted again').length >= 2
        ? true
        : undefined,
    );
    expect((await exchange()).status).toBe(200);
  });
});
