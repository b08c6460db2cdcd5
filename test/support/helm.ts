// The real Helm client for tests: the pinned version scripts/helm.mjs builds from its Go module
// into the git-ignored tool cache the first time (minutes), then runs.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { goToolPath } from '../../scripts/go-tool.mjs';
import { repoRoot } from './repo-root.js';

/**
 * The pinned helm binary itself, for a spawn in another environment (a job's, which keeps only
 * PATH of the test's, so a K8S_EA_CACHE of the test run would not reach scripts/helm.mjs there and
 * the job would build helm again into its own HOME). Call ensureHelm() first.
 */
export const HELM_COMMAND: readonly [string, ...string[]] = [goToolPath('helm')];

/** helm with these arguments, in the test process's environment (built first when missing). */
export function helm(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(repoRoot, 'scripts', 'helm.mjs'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** Builds helm if needed, so that no test pays for it within its own timeout. */
export function ensureHelm(): void {
  const r = helm(['version', '--short']);
  if (r.status !== 0) throw new Error(`helm is not available: ${r.stderr}`);
}
