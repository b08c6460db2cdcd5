// The demo, in the order a reader follows it: cluster -> bundles -> namespaces and the broker's RBAC
// -> OIDC issuer -> broker -> the job (main, kubectl allowed and denied, post) -> the revoked token
// rejected -> the audit trail.
import type { DemoContext } from './context.js';
import type { DemoOptions } from './options.js';
import type { DemoStep } from './run-steps.js';
import { brokerAuditLines, joinAuditLogs, rejectRevokedToken } from './steps/aftermath.js';
import { startLocalControlPlane, useExistingCluster } from './steps/cluster.js';
import { allowedCall, deniedCall, runMainStep, runPostStep } from './steps/job.js';
import {
  checkBundles,
  createNamespaceAndRbac,
  startBrokerWithExamplePolicy,
  startIssuer,
} from './steps/setup.js';

export function demoSteps(options: DemoOptions): DemoStep<DemoContext>[] {
  return [
    options.kubeconfig ? useExistingCluster : startLocalControlPlane,
    checkBundles,
    createNamespaceAndRbac,
    startIssuer,
    startBrokerWithExamplePolicy,
    runMainStep,
    allowedCall,
    deniedCall,
    runPostStep,
    rejectRevokedToken,
    brokerAuditLines,
    joinAuditLogs,
  ];
}
