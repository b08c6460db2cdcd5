// Fault injection for faults.long.test.ts: a PRIVATE control plane (the same kubecluster binary
// as the shared one, in its own state directory and on a fixed port), so a test can freeze, kill
// and restart the API server without disturbing the shared cluster other test files use.
// A restart reuses the state directory: same CA, same ServiceAccount signing key, same etcd data,
// so kubeconfigs and tokens issued before the restart stay valid (see test/cluster/main.go).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../test/support/free-port.js';
import { sleep } from '../../../test/support/cluster.js';

export interface PrivateControlPlane {
  stateDir: string;
  kubeconfigPath: string;
  auditLogPath: string;
  server: string;
  /** The serving process (kube-apiserver and etcd); the controller manager is its child. */
  pid(): number;
  /** SIGSTOP: connections are accepted by the kernel but never answered, like a hung server. */
  freeze(): void;
  thaw(): void;
  /** SIGKILL and wait until the port no longer answers. */
  kill(): Promise<void>;
  /** Starts again on the same state directory and port; resolves when ready. */
  start(): Promise<void>;
  /** Kills it and removes the state directory. */
  remove(): Promise<void>;
}

/** Environment for the helpers in test/support/cluster.ts, pointed at this control plane. */
export function clusterEnv(cp: PrivateControlPlane): Record<string, string> {
  return { K8S_EA_ADMIN_KUBECONFIG: cp.kubeconfigPath, K8S_EA_AUDIT_LOG: cp.auditLogPath };
}

/** The kubecluster binary, built by scripts/cluster.mjs when missing or stale. */
async function controlPlaneBinary(): Promise<string> {
  // A variable specifier: scripts/cluster.mjs is plain JavaScript without type declarations.
  const specifier = new URL('../../../scripts/cluster.mjs', import.meta.url).href;
  const cluster = (await import(specifier)) as { build(o: { quiet: boolean }): Promise<string> };
  return cluster.build({ quiet: true });
}

export async function startPrivateControlPlane(): Promise<PrivateControlPlane> {
  const binary = await controlPlaneBinary();
  const root = mkdtempSync(join(tmpdir(), 'k8s-ea-faults-'));
  const stateDir = join(root, 'state');
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    rmSync(join(stateDir, 'ready'), { force: true });
    const out = openSync(join(root, 'kubecluster.log'), 'a', 0o600);
    const c = spawn(binary, ['serve', stateDir], {
      env: { ...process.env, KUBECLUSTER_PORT: String(port) },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child = c;
    exited = new Promise<void>((r) => c.once('exit', () => r()));
    const deadline = Date.now() + 180_000;
    while (!existsSync(join(stateDir, 'ready'))) {
      if (c.exitCode !== null || c.signalCode !== null) {
        const tail = readFileSync(join(root, 'kubecluster.log'), 'utf8').split('\n').slice(-20).join('\n');
        throw new Error(`private control plane exited during start:\n${tail}`);
      }
      if (Date.now() > deadline) throw new Error('private control plane not ready after 180 s');
      await sleep(100);
    }
  }

  async function kill(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT'); // a frozen process cannot act on SIGKILL's aftermath (exit) until resumed
      child.kill('SIGKILL');
      await exited;
    }
  }

  await start();
  return {
    stateDir,
    kubeconfigPath: join(stateDir, 'admin.kubeconfig'),
    auditLogPath: join(stateDir, 'audit.log'),
    server: `https://127.0.0.1:${port}`,
    pid: () => child?.pid ?? -1,
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    kill,
    start,
    async remove() {
      await kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
