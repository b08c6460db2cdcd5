// What a refusal tells the caller: by default the code and the generic message only; with
// `explainRefusals: true`, also the reason, for CALLER_REASONS only, and the longest allowed ttl
// for ttl_exceeds_rule only. Forged-token and not-yours reasons never leave the broker.
import { afterEach, describe, expect, test } from '@jest/globals';
import { createBrokerApp } from '../../../src/broker/app.js';
import type { RunningServer } from '../../../src/broker/net/server.js';
import type { ErrorResponse } from '../../../src/shared/api.js';
import { CALLER_REASONS, REASONS, type Reason } from '../../../src/shared/contract.js';
import { BrokerError, CLIENT_MESSAGE } from '../../../src/shared/errors.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { FAKE_CLAIMS, fakeBrokerDeps, serveOnLoopback } from '../../../test/support/fake-broker.js';

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close(0);
});

/** A broker whose verifier or policy refuses with `refuse`. */
async function brokerRefusing(refuse: BrokerError, explainRefusals: boolean | undefined) {
  const fromVerifier = refuse.reason.startsWith('jwt_');
  const { deps } = fakeBrokerDeps({
    verifier: {
      verify: async () => {
        if (fromVerifier) throw refuse;
        return FAKE_CLAIMS;
      },
    },
    policy: {
      authorize() {
        throw refuse;
      },
      namespaces: () => ['team-a'],
      namedRoles: () => [],
      sourceAllowed: () => true,
    },
    ...(explainRefusals === undefined ? {} : { explainRefusals }),
  });
  const server = await serveOnLoopback(createBrokerApp(deps).handle);
  servers.push(server);
  const r = await brokerRequest<ErrorResponse>(server.url, 'POST', '/v1/exchange', {
    token: 'a.b.c',
    body: { namespace: 'team-a', role: 'deployer', ttlSeconds: 4000 },
  });
  return { status: r.status, error: r.body.error, text: r.text };
}

const ttlRefusal = () =>
  new BrokerError('ERR_FORBIDDEN', 'ttl_exceeds_rule', 'ttlSeconds 4000 exceeds rule web (900)', {
    maxTtlSeconds: 900,
  });

describe('explainRefusals', () => {
  test('off (the default): code and generic message only, whatever the reason', async () => {
    for (const explain of [undefined, false]) {
      const r = await brokerRefusing(ttlRefusal(), explain);
      expect(r.status).toBe(403);
      expect(Object.keys(r.error).sort()).toEqual(['code', 'message', 'requestId']);
      expect(r.text).not.toContain('ttl_exceeds_rule');
      expect(r.text).not.toContain('900');
    }
  });

  test('on: a caller reason is sent; ttl_exceeds_rule also says the longest ttl allowed', async () => {
    const r = await brokerRefusing(ttlRefusal(), true);
    expect(r.error).toEqual({
      code: 'ERR_FORBIDDEN',
      message: CLIENT_MESSAGE.ERR_FORBIDDEN,
      requestId: expect.any(String),
      reason: 'ttl_exceeds_rule',
      maxTtlSeconds: 900,
    });
    // The log detail (rule names) stays in the log.
    expect(r.text).not.toContain('web');
    const other = await brokerRefusing(
      new BrokerError('ERR_FORBIDDEN', 'namespace_not_allowed', 'rules a, b'),
      true,
    );
    expect(other.error).toEqual({
      code: 'ERR_FORBIDDEN',
      message: CLIENT_MESSAGE.ERR_FORBIDDEN,
      requestId: expect.any(String),
      reason: 'namespace_not_allowed',
    });
  });

  const hidden = REASONS.filter((r) => !(CALLER_REASONS as readonly Reason[]).includes(r));
  test('every reason outside CALLER_REASONS stays hidden even when on (forgeries, other people’s grants, faults)', () => {
    expect(hidden).toEqual(
      expect.arrayContaining([
        'jwt_signature',
        'jwt_unknown_kid',
        'grant_of_another_run',
        'not_a_broker_grant',
      ]),
    );
  });
  test.each(hidden.filter((r) => r.startsWith('jwt_') || r === 'policy_inconsistent'))(
    'on: %s is not sent',
    async (reason) => {
      const code = reason === 'policy_inconsistent' ? 'ERR_INTERNAL' : 'ERR_UNAUTHENTICATED';
      const r = await brokerRefusing(new BrokerError(code, reason), true);
      expect(Object.keys(r.error).sort()).toEqual(['code', 'message', 'requestId']);
      expect(r.text).not.toContain(reason);
    },
  );
});
