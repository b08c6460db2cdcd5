// The committed bundles the demo runs, and the one call that rebuilds them when they are missing or
// older than src/. Kept apart so the build (and where the broker bundle lives) can change in one place.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './kube.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const BROKER_BUNDLE = 'dist/broker/index.js';

export const DIST_FILES = [
  'dist/main/index.js',
  'dist/post/index.js',
  'dist/post/direct-revoke.js',
  BROKER_BUNDLE,
];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  return newest;
}

/** Why dist/ must be rebuilt, or undefined when the committed bundles can be used as they are. */
export function distProblem(): string | undefined {
  const missing = DIST_FILES.filter((f) => !existsSync(join(repoRoot, f)));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  // A fresh clone writes src/ a moment after dist/; only an edit made later counts as stale.
  const oldest = Math.min(...DIST_FILES.map((f) => statSync(join(repoRoot, f)).mtimeMs));
  if (newestMtime(join(repoRoot, 'src')) > oldest + 5000) return 'src/ was changed after dist/ was built';
  return undefined;
}

/** `npm run build`, under the same lock directory the test helpers use against parallel builds. */
export async function buildDist(): Promise<void> {
  const lock = join(tmpdir(), 'k8s-ea-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (!distProblem()) return;
    const r = await runCommand('npm', ['run', 'build']);
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stderr}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
