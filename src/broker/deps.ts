// What the broker's request handling is built from. The app and every route take this one object,
// so tests hand in fakes without mocking modules, and no route imports the app back.
import type { PolicyEngine, TokenVerifier } from './types.js';
import type { ClusterEndpoint, K8sClients } from './kube/clients.js';
import type { Logger } from './logger.js';
import type { AuditLog } from './audit.js';
import type { BrokerMetrics } from './metrics.js';
import type { GrantWork } from './grant-work.js';
import type { AddressSet } from './net/cidr.js';
import type { InlineRoles } from './grants/inline-roles.js';

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
  /** Peers whose X-Forwarded-For names the client (http/client-address.ts); none when absent. */
  trustedProxies?: AddressSet;
  /**
   * Where JWT uses are recorded for cross-replica single use (grants/replay-ledger.ts), and how long
   * after a JWT's exp its record is kept (the verifier's leeway plus a margin). Off when absent.
   */
  replayLedger?: { namespace: string; keepAfterExpirySeconds: number };
  /** The broker's time source (epoch milliseconds); Date.now when absent. */
  now?: () => number;
  /** Tell callers the reason of a refusal when it is one of CALLER_REASONS (config explainRefusals). */
  explainRefusals?: boolean;
  /** Unfinished self-revoke work per grant; see grant-work.ts. */
  grantWork?: GrantWork;
  /** Gateway mode: this replica's live-grant table, so a revocation here takes effect before the answer. */
  liveGrants?: { forget(namespace: string, grantId: string): void };
  /**
   * Gateway mode: the one audience of every grant token the broker issues and accepts (the
   * gateway's; the API server refuses such a token). Absent: direct mode, the API server's own.
   */
  gatewayAudience?: string;
  /** The shared Roles of inline roles; without it each inline grant reconciles its Role afresh. */
  inlineRoles?: InlineRoles;
}
