// cluster:up / cluster:down on a private cache folder (sharing the built binaries), so the shared
// cluster the other tests use keeps running. The second cluster's node runs a pod, and down must
// leave nothing of it behind: no process, mount, link, network namespace, cgroup or file.
import { afterAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { adminKubeconfigPath, kubectl } from '../../test/support/cluster.js';
import {
  clusterHasNode,
  nodeInfo,
  nodeLeftovers,
  nodeProcesses,
  testContainer,
  waitPodsReady,
} from '../../test/support/node.js';

// The shared state dir is <cache>/cluster; the binary is in <cache>/bin.
const sharedCache = dirname(dirname(adminKubeconfigPath()));
const cache = mkdtempSync(join(tmpdir(), 'k8s-ea-cache-'));
mkdirSync(cache, { recursive: true });
symlinkSync(join(sharedCache, 'bin'), join(cache, 'bin'));
// The second cluster as the shared one was started: with a node when it has one (K8S_EA_NODE=0 if not).
const withNode = clusterHasNode();
const env = { ...process.env, K8S_EA_CACHE: cache, K8S_EA_NODE: withNode ? '1' : '0' };
const cluster = (cmd: string) => spawnSync('node', ['scripts/cluster.mjs', cmd], { encoding: 'utf8', env });

afterAll(() => {
  cluster('down');
  rmSync(cache, { recursive: true, force: true });
});

test('cluster:up starts a second cluster without rebuilding; cluster:down stops it, its node and its pod, and leaves nothing', async () => {
  const up = cluster('up');
  expect(up.status).toBe(0);
  expect(up.stderr).not.toMatch(/building/);
  const kubeconfig = up.stdout
    .trim()
    .split('\n')
    .pop()!
    .replace(/^KUBECONFIG=/, '');
  expect(kubeconfig).toBe(join(cache, 'cluster', 'admin.kubeconfig'));
  expect(kubectl(kubeconfig, ['get', '--raw', '/readyz']).stdout.trim()).toBe('ok');
  const pid = Number(readFileSync(join(cache, 'cluster', 'pid'), 'utf8'));
  if (!withNode) {
    // Without the node: the control plane alone.
    console.log('cluster-lifecycle: the shared cluster has no node (K8S_EA_NODE=0), so neither has this one');
    expect(clusterHasNode(join(cache, 'cluster'))).toBe(false);
    expect(cluster('down').status).toBe(0);
    expect(existsSync(join(cache, 'cluster'))).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    return;
  }
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', labels: { app: 'p' } },
    spec: { containers: [testContainer()] },
  };
  expect(kubectl(kubeconfig, ['-n', 'default', 'apply', '-f', '-'], JSON.stringify(pod)).status).toBe(0);
  await waitPodsReady(kubeconfig, 'default', 'app=p');
  expect(clusterHasNode(join(cache, 'cluster'))).toBe(true);
  const node = nodeInfo(join(cache, 'cluster'));
  const pids = nodeProcesses(node);
  expect(pids.length).toBeGreaterThan(4); // containerd, kubelet, kube-proxy, a shim, pause, the app

  const down = cluster('down');
  expect(down.status).toBe(0);
  expect(existsSync(join(cache, 'cluster'))).toBe(false);
  expect(() => process.kill(pid, 0)).toThrow();
  expect(nodeLeftovers(node, join(cache, 'cluster'), pids)).toEqual([]);
  expect(kubectl(adminKubeconfigPath(), ['get', '--raw', '/readyz']).stdout.trim()).toBe('ok');
}, 240_000);
