// Granted vs used in direct mode: the grant's calls go straight to the API server, so they are read
// from its audit log at the revocation. The grant's calls are the Events of its ServiceAccount (the
// username `system:serviceaccount:<namespace>:<grant id>` and the ServiceAccount's uid, which the
// API server records as the user's uid for its tokens), from the grant's start to now: the log's
// tail is read backwards to the grant's creation, bounded in bytes and time (audit-log-tail.ts).
// The calls are counted and matched to the role's rules as the gateway's are (usage-recorder.ts,
// usage-report.ts); only the Event's RBAC attributes and status are read, never a body.
import { serviceAccountUser } from '../../shared/contract.js';
import { errorMessage } from '../../shared/errors.js';
import type { K8sClients } from '../kube/clients.js';
import type { Logger } from '../logger.js';
import type { PolicyEngine } from '../types.js';
import { readAuditTail, type TailResult } from './audit-log-tail.js';
import { readRoleRules } from './grant-rules.js';
import type { EndedGrant, UsageAnswer, UsageReporter } from './grant-usage.js';
import { kubeAuditCall } from './kube-audit-event.js';
import { UsageRecorder, type GrantCalls, type UsageRecorderOptions } from './usage-recorder.js';
import { usageReport } from './usage-report.js';

/**
 * How long a revocation may spend reading the log: well inside the post step's 8 s per attempt,
 * so the answer (the grant is already revoked by then) is never lost to a timeout.
 */
export const READ_BUDGET_MS = 3_000;

export interface AuditLogSource {
  file: string;
  maxReadBytes: number;
}

export interface AuditLogUsageDeps {
  /** Absent: the broker is given no audit log, and every answer says so. */
  auditLog: AuditLogSource | undefined;
  k8s: Pick<K8sClients, 'rbac'>;
  policy: Pick<PolicyEngine, 'shadowRole' | 'roleDefinition'>;
  logger: Logger;
  now: () => number;
}

/** The grant's calls among the lines (newest first), counted oldest first. */
function countCalls(
  grant: EndedGrant,
  lines: readonly string[],
  shadowRole: UsageRecorderOptions['shadowRole'],
): GrantCalls {
  const username = serviceAccountUser(grant.namespace, grant.grantId);
  const recorder = new UsageRecorder({ shadowRole });
  const recorded = {
    grantId: grant.grantId,
    namespace: grant.namespace,
    ruleName: grant.ruleName,
    role: grant.role,
  };
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const event = kubeAuditCall(parseLine(lines[i]!));
    if (!event || event.username !== username) continue;
    // The same name cannot be another grant's (grant ids are random), but the uid makes it certain.
    if (grant.serviceAccountUid !== undefined && event.uid !== grant.serviceAccountUid) continue;
    recorder.record(recorded, event.call);
  }
  return recorder.take(grant.grantId) ?? { role: grant.role, kinds: [], calls: 0, truncated: false };
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

const gapOf = (tail: TailResult) =>
  tail.complete
    ? {}
    : ({ incomplete: tail.stoppedBy === 'file-start' ? 'log-starts-after-grant' : 'read-limit' } as const);

export function createAuditLogUsage(deps: AuditLogUsageDeps): UsageReporter {
  const { auditLog, logger } = deps;
  const shadowRole = (rule: string) => deps.policy.shadowRole?.(rule);
  return {
    async report(grant): Promise<UsageAnswer> {
      if (!auditLog) return { usageUnavailable: 'no-audit-log' };
      const since = Date.parse(grant.createdAt ?? '');
      const started = deps.now();
      let tail: TailResult;
      try {
        if (!Number.isFinite(since)) throw new Error('the grant has no creation time');
        tail = await readAuditTail(auditLog.file, {
          since,
          needle: JSON.stringify(serviceAccountUser(grant.namespace, grant.grantId)),
          maxBytes: auditLog.maxReadBytes,
          deadline: started + READ_BUDGET_MS,
          now: deps.now,
        });
      } catch (err) {
        logger.warn("cannot read the API server's audit log for a grant's job summary", {
          grantId: grant.grantId,
          file: auditLog.file,
          error: errorMessage(err),
        });
        return { usageUnavailable: 'audit-log-unreadable' };
      }
      logger.debug("read the API server's audit log for a grant's job summary", {
        grantId: grant.grantId,
        bytesRead: tail.bytesRead,
        ms: deps.now() - started,
        complete: tail.complete,
      });
      const recorded = countCalls(grant, tail.lines, shadowRole);
      const rules = await readRoleRules(deps.k8s, deps.policy, grant.namespace, grant.role);
      return {
        usage: { source: 'audit-log', ...usageReport(recorded, grant.namespace, rules), ...gapOf(tail) },
      };
    },
  };
}
