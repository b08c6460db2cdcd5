// What every test expects of the shared control plane beyond Kubernetes itself, installed the way an admin
// installs it from deploy/: the admission guard and the example job ClusterRoles. Server-side apply, so
// concurrent runs against one control plane never collide.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const deployDir = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'deploy');
export const CLUSTER_FIXTURES = ['admission-guard.yaml', 'job-clusterroles.yaml'];

function kubectl(kubeconfig, args, input) {
  return spawnSync('kubectl', ['--kubeconfig', kubeconfig, '--request-timeout=30s', ...args], {
    encoding: 'utf8',
    input,
  });
}

/**
 * Applies the fixtures and waits until the API server enforces the guard: a request from a grant-shaped
 * identity (impersonated, with RBAC passed by system:masters) must be refused by it.
 */
export async function installClusterFixtures(kubeconfig) {
  const files = CLUSTER_FIXTURES.flatMap((f) => ['-f', join(deployDir, f)]);
  const applied = kubectl(kubeconfig, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=k8s-ea-tests',
    ...files,
  ]);
  if (applied.status !== 0)
    throw new Error(`applying ${CLUSTER_FIXTURES.join(', ')} failed: ${applied.stderr}`);
  const probe = [
    `--as=system:serviceaccount:default:gha-${'0'.repeat(32)}`,
    '--as-group=system:masters',
    'create',
    '--dry-run=server',
    '-f',
    '-',
  ];
  const service = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'k8s-ea-guard-probe', namespace: 'default' },
    spec: { ports: [{ port: 80 }], externalIPs: ['203.0.113.1'] },
  });
  for (const deadline = Date.now() + 30_000; ;) {
    const r = kubectl(kubeconfig, probe, service);
    if (r.status !== 0 && r.stderr.includes('k8s-ea-grant-guard')) return;
    if (Date.now() > deadline) throw new Error(`the admission guard is not enforced after 30 s: ${r.stderr}`);
    await new Promise((r2) => setTimeout(r2, 200));
  }
}
