// The broker's cluster-scoped objects (its TokenReview and role-reader ClusterRoles and their bindings)
// have one name per cluster, whichever way it is installed: deploy/ (kubectl apply -k) and the chart
// (helm install) both create them, and helm refuses objects another install owns. Test files that
// install the broker one of those ways therefore take turns: this lock, one per cluster, held for the
// file's whole life (beforeAll to afterAll). lockCluster is the same lock under any other name.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { adminKubeconfigPath, sleep } from './cluster.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether the lock's holder is gone (a test process that was killed): then the lock is broken. */
function abandoned(lock: string): boolean {
  try {
    return !alive(Number(readFileSync(join(lock, 'pid'), 'utf8')));
  } catch {
    return false; // between mkdir and the pid file, or released meanwhile
  }
}

/**
 * Waits for the lock `name` of the cluster the tests use (a directory beside its state, so it goes
 * with the cluster); resolves with its release. `what` names the waiter in the log.
 */
export async function lockCluster(name: string, what: string): Promise<() => void> {
  const lock = join(dirname(adminKubeconfigPath()), `${name}.lock`);
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      const waited = Date.now() - started;
      if (waited > 1000) console.log(`${what}: waited ${waited} ms for the ${name} lock`);
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (abandoned(lock)) rmSync(lock, { recursive: true, force: true });
      else await sleep(500);
    }
  }
}

/** Waits for the cluster's broker-install lock; resolves with its release. */
export const lockBrokerInstall = (what: string): Promise<() => void> => lockCluster('broker-install', what);
