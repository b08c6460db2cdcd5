// The control plane's CPU, for the growth scenario: waiting until it has digested a burst of writes
// (the garbage collector's graph and the watch caches take 50,000 new objects for a while), and a
// CPU profile of the API server from its pprof endpoint (`/debug/pprof/profile`, served to the admin).
import { request } from 'node:https';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { treesCpuMs } from './foreign-load.js';
import { credentialsFromKubeconfig } from './kube-client.js';

/** Where bench/lib/profiled-broker.mjs writes the brokers' profiles too. */
export const PROFILE_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '.cache',
  'bench-profiles',
);
/** Below this many cores' worth of CPU over a second, the control plane counts as settled. */
const QUIET_CORES = 0.3;
const QUIET_MAX_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the process tree of `pid` (the API server with its etcd and controller-manager) uses
 * less than QUIET_CORES over a second, or QUIET_MAX_MS passed. Returns the time waited, in ms.
 */
export async function waitForQuiet(pid: number): Promise<number> {
  const started = Date.now();
  let before = treesCpuMs([pid]);
  while (Date.now() - started < QUIET_MAX_MS) {
    await sleep(1000);
    const now = treesCpuMs([pid]);
    if (now - before < QUIET_CORES * 1000) break;
    before = now;
  }
  return Date.now() - started;
}

/**
 * A CPU profile of the API server over the next `seconds`, written to PROFILE_DIR/`name` (read it
 * with `go tool pprof -top <file>`). The admin kubeconfig's client certificate authenticates.
 */
export function fetchApiServerProfile(seconds: number, name: string): Promise<string> {
  const creds = credentialsFromKubeconfig(process.env.K8S_EA_ADMIN_KUBECONFIG ?? '');
  const server = new URL(creds.server);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: server.hostname,
        port: server.port,
        path: `/debug/pprof/profile?seconds=${seconds}`,
        ca: creds.ca,
        cert: creds.cert,
        key: creds.key,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          if (res.statusCode !== 200) {
            reject(
              new Error(`API server profile answered ${res.statusCode}: ${body.toString('utf8', 0, 300)}`),
            );
            return;
          }
          mkdirSync(PROFILE_DIR, { recursive: true });
          const file = join(PROFILE_DIR, name);
          writeFileSync(file, body);
          resolve(file);
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
