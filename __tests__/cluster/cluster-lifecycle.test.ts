// cluster:up / cluster:down on a private cache folder (sharing the built binary), so the shared
// control plane the other tests use keeps running.
import { afterAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { adminKubeconfigPath, kubectl } from '../../test/support/cluster.js';

// The shared state dir is <cache>/cluster; the binary is in <cache>/bin.
const sharedCache = dirname(dirname(adminKubeconfigPath()));
const cache = mkdtempSync(join(tmpdir(), 'k8s-ea-cache-'));
mkdirSync(cache, { recursive: true });
symlinkSync(join(sharedCache, 'bin'), join(cache, 'bin'));
const env = { ...process.env, K8S_EA_CACHE: cache };
const cluster = (cmd: string) => spawnSync('node', ['scripts/cluster.mjs', cmd], { encoding: 'utf8', env });

afterAll(() => {
  cluster('down');
  rmSync(cache, { recursive: true, force: true });
});

test('cluster:up starts a second control plane without rebuilding; cluster:down stops it and removes its state', () => {
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

  const down = cluster('down');
  expect(down.status).toBe(0);
  expect(existsSync(join(cache, 'cluster'))).toBe(false);
  expect(() => process.kill(pid, 0)).toThrow();
  expect(kubectl(adminKubeconfigPath(), ['get', '--raw', '/readyz']).stdout.trim()).toBe('ok');
});
