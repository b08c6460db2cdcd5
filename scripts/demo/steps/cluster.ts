// Step 1: the cluster, either the local control plane or the one the user names. Either way the test
// harness is pointed at it, since the later steps reuse the harness.
import { resolve } from 'node:path';
import { useCluster } from '../../../test/support/cluster.js';
import type { DemoContext } from '../context.js';
import { apiServerReady, checkExistingKubeconfig } from '../kube.js';
import { runChild } from '../../../test/support/runner.js';
import type { DemoStep } from '../run-steps.js';

/** What the demo uses of scripts/cluster.mjs (plain JavaScript, so its shape is declared here). */
interface ClusterScript {
  up(o?: { quiet?: boolean }): Promise<ClusterInfo>;
  down(o?: { quiet?: boolean }): Promise<void>;
  clusterInfo(): ClusterInfo;
}
interface ClusterInfo {
  kubeconfig: string;
  auditLog: string;
  server?: string;
}

/** Loaded on use: importing the demo (e.g. from a test) must not need the cluster script. */
export async function loadClusterScript(): Promise<ClusterScript> {
  const specifier = '../../cluster.mjs'; // a variable: keeps tsc from looking for its types
  return (await import(specifier)) as ClusterScript;
}

export const useExistingCluster: DemoStep<DemoContext> = {
  title: (ctx) => `Use the existing cluster of ${resolve(ctx.options.kubeconfig!)}`,
  async run(ctx) {
    const adminKubeconfig = resolve(ctx.options.kubeconfig!);
    const t = ctx.transcript;
    const server = checkExistingKubeconfig(adminKubeconfig);
    const v = await runChild('kubectl', [
      '--kubeconfig',
      adminKubeconfig,
      'version',
      '-o',
      'json',
      '--request-timeout=10s',
    ]);
    if (v.code !== 0) throw new Error(`cannot reach the cluster: ${v.stderr.trim()}`);
    const version = (JSON.parse(v.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion
      ?.gitVersion;
    t.line(`API server ${server} (Kubernetes ${version ?? 'unknown version'})`);
    t.line('its audit log is not readable from here: the last step says what to look for in it');
    useCluster({ adminKubeconfig });
    ctx.put('cluster', { adminKubeconfig });
  },
};

export const startLocalControlPlane: DemoStep<DemoContext> = {
  title:
    'Start the local control plane (kube-apiserver + kube-controller-manager, built from k8s.io/kubernetes)',
  async run(ctx) {
    const { transcript: t, options, cleanup } = ctx;
    const { clusterInfo, up, down } = await loadClusterScript();
    const wasRunning = apiServerReady(clusterInfo().kubeconfig);
    if (!wasRunning) {
      t.line('building it first if needed (progress below, on stderr)');
      // Registered before starting: a Ctrl-C while it starts must not leave it running.
      cleanup.push(
        options.keep ? 'left the local control plane running (--keep)' : 'stopped the local control plane',
        async () => {
          if (!options.keep) await down({ quiet: true });
        },
      );
    }
    const started = await up({ quiet: false });
    t.line(`${wasRunning ? 'reusing the running' : 'started a'} control plane at ${started.server}`);
    t.line(`audit log: ${started.auditLog}`);
    useCluster({ adminKubeconfig: started.kubeconfig, auditLog: started.auditLog });
    ctx.put('cluster', { adminKubeconfig: started.kubeconfig, auditLog: started.auditLog });
  },
};
