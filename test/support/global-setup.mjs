// Jest global setup: start (or reuse) the real local control plane once for the whole run, and
// hand its coordinates to the test workers through the environment; install the cluster-wide fixtures.
// Before all that, the prerequisites (prerequisites.mjs): a missing one stops the run in its first seconds.
import { up } from '../../scripts/cluster.mjs';
import { installClusterFixtures } from './cluster-fixtures.mjs';
import { ensurePrerequisites } from './prerequisites.mjs';

export default async function globalSetup() {
  // First, in seconds: a missing prerequisite stops the run before the control plane is built.
  ensurePrerequisites({ tinyproxy: true, networkTools: true });
  const info = await up({ quiet: !process.env.CI });
  process.env.K8S_EA_ADMIN_KUBECONFIG = info.kubeconfig;
  process.env.K8S_EA_AUDIT_LOG = info.auditLog;
  process.env.K8S_EA_SERVER = info.server;
  // One id per test run: what a run builds once for all its files (the broker image) is keyed by it.
  process.env.K8S_EA_TEST_RUN = `${Date.now()}-${process.pid}`;
  await installClusterFixtures(info.kubeconfig);
}
