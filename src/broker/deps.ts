// What the broker's request handling is built from. The app and every route take this one object,
// so tests hand in fakes without mocking modules, and no route imports the app back.
import type { PolicyEngine, TokenVerifier } from './types.js';
import type { ClusterEndpoint, K8sClients } from './k8s/clients.js';
import type { Logger } from './logger.js';
import type { AuditLog } from './audit.js';
import type { BrokerMetrics } from './metrics.js';
import type { GrantWork } from './grant-work.js';
import type { InlineRoles } from './k8s/inline-roles.js';

export interface BrokerDeps {
  verifier: TokenVerifier;
  policy: PolicyEngine;
  k8s: K8sClients;
  /** What jobs are told about the API server (URL + CA). */
  endpoint: ClusterEndpoint;
  logger: Logger;
  audit: AuditLog;
  metrics: BrokerMetrics;
  /** revocationsPerMinute: for the whole route, checked before any TokenReview or JWT verification. */
  limits: { bodyBytes: number; perRepositoryPerMinute: number; revocationsPerMinute?: number };
  /**
   * Where JWT uses are recorded for cross-replica single use (k8s/replay-ledger.ts), and how long
   * after a JWT's exp its record is kept (the verifier's leeway plus a margin). Off when absent.
   */
  replayLedger?: { namespace: string; keepAfterExpirySeconds: number };
  /** The broker's time source (epoch milliseconds); Date.now when absent. */
  now?: () => number;
  /** Unfinished self-revoke work per grant; see grant-work.ts. */
  grantWork?: GrantWork;
  /** The shared Roles of inline roles; without it each inline grant reconciles its Role afresh. */
  inlineRoles?: InlineRoles;
}
