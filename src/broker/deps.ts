// What the broker's request handling is built from. The app and every route take this one object,
// so tests hand in fakes without mocking modules, and no route imports the app back.
import type { TokenVerifier } from './types.js';
import type { ClusterEndpoint } from './kube/clients.js';
import type { AuditLog } from './audit.js';
import type { BrokerMetrics } from './metrics.js';
import type { AddressSet } from './net/cidr.js';
import type { GrantDeps } from './grants/grant-deps.js';
import type { UsageReporter } from './usage/grant-usage.js';

/** The grant domain's dependencies (grants/grant-deps.ts), and what the routes need besides. */
export interface BrokerDeps extends GrantDeps {
  verifier: TokenVerifier;
  /** What jobs are told about the API server (URL + CA). */
  endpoint: ClusterEndpoint;
  audit: AuditLog;
  metrics: BrokerMetrics;
  /** revocationsPerMinute: for the whole route, checked before any TokenReview or JWT verification. */
  limits: { bodyBytes: number; perRepositoryPerMinute: number; revocationsPerMinute?: number };
  /** Peers whose X-Forwarded-For names the client (http/client-address.ts); none when absent. */
  trustedProxies?: AddressSet;
  /** Tell callers the reason of a refusal when it is one of CALLER_REASONS (config explainRefusals). */
  explainRefusals?: boolean;
  /** What a grant did (the gateway's count, or the API server's audit log), reported when it is revoked. */
  grantUsage?: UsageReporter;
}
