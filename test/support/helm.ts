// The real Helm client for tests: the pinned version scripts/helm.mjs builds from its Go module
// into the git-ignored tool cache the first time (minutes), then runs.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './repo-root.js';

/** The command and leading arguments that run helm, for a spawn in another environment (a job's). */
export const HELM_COMMAND: readonly [string, ...string[]] = [
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
