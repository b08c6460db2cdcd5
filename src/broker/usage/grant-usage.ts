// Granted vs used, wired: the gateway tells it each forwarded call (recordGatewayCall), the
// revocation asks for the grant's report (report), matched against the rules of the grant's role
// (named in its ServiceAccount, as the gateway's table keeps it). Shadow mode's would-deny calls are counted in a metric and
// logged as they happen.
import type { GrantUsage } from '../../shared/api.js';
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

export interface GrantUsageTracker {
  recordGatewayCall(grant: RecordedGrant, call: ForwardedCall, pathname: string, status: number): void;
  /** Undefined when no call of the grant came through this replica's gateway. */
  report(namespace: string, grantId: string): Promise<GrantUsage | undefined>;
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
    async report(namespace, grantId) {
      const recorded = recorder.take(grantId);
      if (!recorded) return undefined;
      const rules = await readRoleRules(deps.k8s, deps.policy, namespace, recorded.role);
      return usageReport(recorded, namespace, rules);
    },
  };
}
