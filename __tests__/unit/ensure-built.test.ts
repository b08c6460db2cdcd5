// The shared "build if stale, under a lock" helper, on a scratch checkout whose build script
// counts its runs: parallel callers build once, a changed source rebuilds, a dead holder's lock
// is broken instead of waited on, and a failing build is reported with its stderr.
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, staleness, type BuildTarget } from '../../test/support/ensure-built.js';

let root: string;
const target: BuildTarget = { name: 'action', outputs: ['out/a.js', 'out/b.js'], sources: ['src'] };
const runs = () => readFileSync(join(root, 'runs'), 'utf8').length;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'k8s-ea-ensure-built-'));
  mkdirSync(join(root, 'scripts'));
  mkdirSync(join(root, 'src', 'deep'), { recursive: true });
  writeFileSync(join(root, 'src', 'deep', 'x.ts'), 'export {};\n');
  writeFileSync(join(root, 'runs'), '');
  // Slow enough that parallel callers overlap; records one character per run.
  writeFileSync(
    join(root, 'scripts', 'build.mjs'),
    `import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
if (process.argv[2] !== 'action') process.exit(3);
if (existsSync('fail')) { process.stderr.write('entry missing'); process.exit(1); }
appendFileSync('runs', 'x');
await new Promise((r) => setTimeout(r, 300));
mkdirSync('out', { recursive: true });
writeFileSync('out/a.js', '');
writeFileSync('out/b.js', '');
`,
  );
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

test('missing outputs build once for parallel callers; current outputs are left alone', async () => {
  expect(staleness(target, root)).toBe('missing out/a.js, out/b.js');
  const results = await Promise.all([1, 2, 3].map(() => ensureBuilt(target, root)));
  expect(runs()).toBe(1);
  expect(results[0]).toEqual([join(root, 'out/a.js'), join(root, 'out/b.js')]);
  expect(staleness(target, root)).toBeUndefined();
  await ensureBuilt(target, root);
  expect(runs()).toBe(1);
});

test('a source changed after the build (deep in a directory) rebuilds', async () => {
  await ensureBuilt(target, root);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'src', 'deep', 'x.ts'), later, later);
  expect(staleness(target, root)).toBe('src changed after the build');
  await ensureBuilt(target, root);
  expect(runs()).toBe(2);
});

test('a lock left by a process that is gone is broken, not waited on', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  mkdirSync(join(root, '.cache', 'build.lock'), { recursive: true });
  writeFileSync(join(root, '.cache', 'build.lock', 'pid'), String(dead));
  const started = Date.now();
  await ensureBuilt(target, root);
  expect(runs()).toBe(1);
  expect(Date.now() - started).toBeLessThan(10_000);
});

test('a failing build rejects with its stderr and releases the lock', async () => {
  writeFileSync(join(root, 'fail'), '');
  await expect(ensureBuilt(target, root)).rejects.toThrow(/build action failed \(exit 1\):\nentry missing/);
  expect(existsSync(join(root, '.cache', 'build.lock'))).toBe(false);
  rmSync(join(root, 'fail'));
  await ensureBuilt(target, root);
  expect(runs()).toBe(1);
});
