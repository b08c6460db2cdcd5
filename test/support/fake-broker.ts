// The broker's HTTP app with injected fakes, served on loopback, for the tests that need no cluster
// (the HTTP edge, refusals, shutdown, the metrics listener): one place builds the deps and the listener.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BrokerDeps } from '../../src/broker/deps.js';
import { listen, type RunningServer } from '../../src/broker/net/server.js';
import type { K8sClients } from '../../src/broker/kube/clients.js';
import { createLogger } from '../../src/broker/logger.js';
import { createGrantWork } from '../../src/broker/grant-work.js';
import { InlineRoles } from '../../src/broker/grants/inline-roles.js';
import { jwtRecordKeepAfterExpiry } from '../../src/broker/grants/replay-ledger.js';
import { createMetrics } from '../../src/broker/metrics.js';
import type { VerifiedClaims } from '../../src/broker/types.js';
import { BrokerError } from '../../src/shared/errors.js';

/** What a fake verifier returns: just enough of a run for rate limiting, the JWT ledger and audit lines. */
export const FAKE_CLAIMS = {
  repository_id: '42',
  run_id: '1',
  run_attempt: '1',
  jti: 'j',
  // A verified JWT always has one: a spent JWT's record is kept until after it.
  exp: Math.floor(Date.now() / 1000) + 300,
} as VerifiedClaims;

export interface FakeBrokerDeps {
  deps: BrokerDeps;
  /** Every audit event recorded, in order. */
  audit: Record<string, unknown>[];
  /** Every log line written, as JSON text. */
  logs: string[];
}

/**
 * Deps whose verifier accepts (FAKE_CLAIMS), whose policy refuses every exchange (no_matching_rule)
 * and whose cluster is never reached; `overrides` replaces any of them.
 */
export function fakeBrokerDeps(overrides: Partial<BrokerDeps> = {}): FakeBrokerDeps {
  const audit: Record<string, unknown>[] = [];
  const logs: string[] = [];
  const deps: BrokerDeps = {
    verifier: { verify: async () => FAKE_CLAIMS },
    policy: {
      authorize() {
        throw new BrokerError('ERR_FORBIDDEN', 'no_matching_rule');
      },
      namespaces: () => ['team-a'],
      namedRoles: () => [],
      sourceAllowed: () => true,
    },
    k8s: {} as K8sClients,
    endpoint: { server: 'https://k8s.invalid', certificateAuthorityData: '' },
    logger: createLogger({ write: (l) => void logs.push(l) }),
    audit: { record: (e) => void audit.push(e) },
    metrics: createMetrics(),
    limits: { bodyBytes: 4096, perRepositoryPerMinute: 600 },
    // What production always supplies, inert: nothing here is reached before the cluster would be.
    replayLedger: { namespace: 'k8s-ea-system', keepAfterExpirySeconds: jwtRecordKeepAfterExpiry(30) },
    grantWork: createGrantWork(),
    inlineRoles: new InlineRoles({ rbac: {} as K8sClients['rbac'] }),
    now: Date.now,
    ...overrides,
  };
  return { deps, audit, logs };
}

/** Serves `handler` over plain HTTP on 127.0.0.1 (a port of its own); the caller closes it. */
export function serveOnLoopback(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  requestTimeoutMs = 5000,
): Promise<RunningServer> {
  return listen(handler, { host: '127.0.0.1', port: 0, insecureHttp: true, requestTimeoutMs });
}
