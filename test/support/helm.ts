// The real Helm client for tests: the pinned version scripts/helm.mjs builds from its Go module
// into the git-ignored tool cache the first time (minutes), then runs.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join, resolve } from 'node:path';
import { repoRoot } from './repo-root.js';

/**
 * The command and leading arguments that run helm, for a spawn in another environment (a job's,
 * which keeps only PATH of the test's): it names the tool cache itself, so with K8S_EA_CACHE set
 * the job runs the helm built there instead of building another into its own HOME.
 */
export const HELM_COMMAND: readonly [string, ...string[]] = [
  'env',
  `K8S_EA_CACHE=${resolve(process.env.K8S_EA_CACHE ?? join(repoRoot, '.cache'))}`,
  process.execPath,
  join(repoRoot, 'scripts', 'helm.mjs'),
];

/** helm with these arguments, in the test process's environment. */
export function helm(args: string[]): SpawnSyncReturns<string> {
  const [cmd, ...lead] = HELM_COMMAND;
  return spawnSync(cmd, [...lead, ...args], {
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
