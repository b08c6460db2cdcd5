// What the grant domain works with; BrokerDeps (deps.ts) extends it, so the routes hand theirs in.
import type { K8sClients } from '../kube/clients.js';
import type { Logger } from '../logger.js';
import type { GrantWork } from '../grant-work.js';
import type { PolicyEngine } from '../types.js';
import type { InlineRoles } from './inline-roles.js';
import type { ReplayLedger } from './replay-ledger.js';
import type { SharedSelfRevoke } from './shared-self-revoke.js';

export interface GrantDeps {
  k8s: K8sClients;
  policy: PolicyEngine;
  logger: Logger;
  /**
   * Where JWT uses are recorded for cross-replica single use (replay-ledger.ts), and how long
   * after a JWT's exp its record is kept (the verifier's leeway plus JWT_RECORD_MARGIN_SECONDS).
   */
  replayLedger: ReplayLedger;
  /** Unfinished self-revoke work per grant; see grant-work.ts. */
  grantWork: GrantWork;
  /** The shared Roles of inline roles. */
  inlineRoles: InlineRoles;
  /** Direct mode: the shared self-revoke Role while its admission guard is verified; absent: the pair. */
  sharedSelfRevoke?: Pick<SharedSelfRevoke, 'roleFor'>;
  /** The broker's time source (epoch milliseconds). */
  now: () => number;
  /**
   * Gateway mode: the one audience of every grant token the broker issues and accepts (the
   * gateway's; the API server refuses such a token). Absent: direct mode (grant-kinds.ts).
   */
  gatewayAudience?: string;
  /** Gateway mode: this replica's live-grant table, so a revocation here takes effect before the answer. */
  liveGrants?: { forget(namespace: string, grantId: string): void };
}
