// Granted vs used in gateway mode, wired: the gateway tells it each forwarded call
// (recordGatewayCall), the revocation asks for the grant's report (report), matched against the
// rules of the grant's role (named in its ServiceAccount, as the gateway's table keeps it). Shadow
// mode's would-deny calls are counted in a metric and logged as they happen.
import type { RevokeResponse } from '../../shared/api.js';
import type { K8sClients } from '../kube/clients.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import type { PolicyEngine } from '../types.js';
import { apiGroupOfPath, describeResource, type ApiCall } from './api-call.js';
import { readRoleRules } from './grant-rules.js';
import { UsageRecorder, type RecordedGrant } from './usage-recorder.js';
import { usageReport } from './usage-report.js';

/** What the gateway knows of a forwarded call (gateway/kube-request.ts's KubeRequestInfo). */
export interface ForwardedCall {
  verb: string;
  namespace?: string;
  resource?: string;
  name?: string;
  subresource?: string;
}

/** A grant as its revocation knows it, from its ServiceAccount. */
export interface EndedGrant {
  grantId: string;
  namespace: string;
  serviceAccountUid?: string;
  /** When the grant began: its ServiceAccount's creation (RFC 3339). */
  createdAt?: string;
  /** The policy's names of its role and rule. */
  role?: string;
  ruleName?: string;
}

/** What the revocation answer says of the grant's calls. */
export type UsageAnswer = Pick<RevokeResponse, 'usage' | 'usageUnavailable'>;

/** Asked once per revocation, after the grant's objects are gone. */
export interface UsageReporter {
  /** Undefined: nothing to say (gateway mode, no call of the grant came through this replica). */
  report(grant: EndedGrant): Promise<UsageAnswer | undefined>;
}

export interface GrantUsageTracker extends UsageReporter {
  recordGatewayCall(grant: RecordedGrant, call: ForwardedCall, pathname: string, status: number): void;
}

/** The call as RBAC saw it: the API group from the path; no resource for a non-resource URL. */
export function apiCallOf(call: ForwardedCall, pathname: string, status: number): ApiCall {
  const apiGroup = apiGroupOfPath(pathname);
  return {
    verb: call.verb,
    apiGroup: apiGroup ?? '',
    resource: apiGroup === undefined ? undefined : call.resource,
    subresource: call.subresource,
    namespace: call.namespace,
    name: call.name,
    status,
  };
}

export function createGrantUsage(deps: {
  k8s: Pick<K8sClients, 'rbac'>;
  policy: Pick<PolicyEngine, 'shadowRole' | 'roleDefinition'>;
  metrics: Pick<BrokerMetrics, 'gatewayShadowWouldDeny'>;
  logger: Logger;
}): GrantUsageTracker {
  const recorder = new UsageRecorder({
    shadowRole: (ruleName) => deps.policy.shadowRole?.(ruleName),
    onWouldDeny: (grant, call, shadow) => {
      deps.metrics.gatewayShadowWouldDeny.inc({ rule: grant.ruleName ?? '', role: shadow.role });
      deps.logger.info('shadow role would deny', {
        grantId: grant.grantId,
        policyRule: grant.ruleName,
        shadowRole: shadow.role,
        verb: call.verb,
        resource: call.resource === undefined ? '(non-resource URL)' : describeResource(call),
        namespace: call.namespace,
        name: call.name,
      });
    },
  });
  return {
    recordGatewayCall: (grant, call, pathname, status) =>
      recorder.record(grant, apiCallOf(call, pathname, status)),
    async report({ namespace, grantId }) {
      const recorded = recorder.take(grantId);
      if (!recorded) return undefined;
      const rules = await readRoleRules(deps.k8s, deps.policy, namespace, recorded.role);
      return { usage: { source: 'gateway', ...usageReport(recorded, namespace, rules) } };
    },
  };
}
