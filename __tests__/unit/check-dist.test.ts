// check-dist guards the committed bundles: it must fail when src/ changed without a rebuild, and
// when an entry point is missing (a build that skipped it would leave the old bundle looking current).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..', '..');
let clone: string;

beforeAll(() => {
  clone = mkdtempSync(join(tmpdir(), 'k8s-ea-checkdist-'));
  const r = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', repo, clone], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  // A hard-linked copy, not a symlink: esbuild names bundled modules by their real path.
  const cp = spawnSync('cp', ['-al', join(repo, 'node_modules'), join(clone, 'node_modules')], {
    encoding: 'utf8',
  });
  if (cp.status !== 0) throw new Error(cp.stderr);
});
afterAll(() => rmSync(clone, { recursive: true, force: true }));

const checkDist = () => spawnSync('node', ['scripts/check-dist.mjs'], { cwd: clone, encoding: 'utf8' });

test('check-dist passes on the committed dist/ and fails once src/ changes without a rebuild', () => {
  const current = checkDist();
  expect(current.stderr).toBe('');
  expect(current.status).toBe(0);

  spawnSync('git', ['checkout', '--quiet', '--', 'dist/'], { cwd: clone });
  appendFileSync(join(clone, 'src', 'action', 'main.ts'), '\nprocess.exitCode ??= 0; // stale\n');
  const stale = checkDist();
  expect(stale.status).toBe(1);
  expect(stale.stderr).toMatch(/dist\/ is stale/);
});

test('check-dist fails when an entry point is missing, naming it', () => {
  spawnSync('git', ['checkout', '--quiet', '--', 'src/', 'dist/'], { cwd: clone });
  renameSync(join(clone, 'src', 'action', 'post.ts'), join(clone, 'src', 'action', 'post-moved.ts'));
  try {
    const missing = checkDist();
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('missing entry point(s): src/action/post.ts');
  } finally {
    renameSync(join(clone, 'src', 'action', 'post-moved.ts'), join(clone, 'src', 'action', 'post.ts'));
  }
});
