// The tests' prerequisites (test/support/prerequisites.mjs, run by both jest global setups): on a machine
// without tinyproxy the run stops in its first seconds, naming the one command that installs it, before
// any control plane or helm build.
import { expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../test/support/repo-root.js';

/** A PATH with exactly these commands (links to the real ones). */
function pathWith(commands: string[]): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-path-'));
  for (const c of commands) {
    const real = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();
    if (real) symlinkSync(real, join(dir, c));
  }
  return { path: dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const check = (path: string, tinyproxy: boolean) => {
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { ensurePrerequisites } from ${JSON.stringify(join(repoRoot, 'test/support/prerequisites.mjs'))};
       try { ensurePrerequisites({ tinyproxy: ${tinyproxy}, log: () => {} }); console.log('ok'); }
       catch (e) { console.error(e.message); process.exit(1); }`,
    ],
    { encoding: 'utf8', env: { PATH: path, K8S_EA_CACHE: join(tmpdir(), 'k8s-ea-no-cache') } },
  );
  return { ...r, ms: Date.now() - started };
};

test('without tinyproxy: stops at once with the command that installs it, before building anything', () => {
  const p = pathWith(['go', 'kubectl']);
  try {
    const r = check(p.path, true);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "tinyproxy (the proxy tests' real forward proxy): apt-get install -y tinyproxy",
    );
    expect(r.stderr).not.toContain('go (');
    console.log(`prerequisites: a missing tinyproxy stopped the run after ${r.ms} ms`);
  } finally {
    p.cleanup();
  }
});

test('without go and kubectl: both named, with where to get them', () => {
  const p = pathWith([]);
  try {
    const r = check(p.path, false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/go \(1\.26\+\): https:\/\/go\.dev\/dl\//);
    expect(r.stderr).toMatch(/kubectl: https:\/\/kubernetes\.io/);
    expect(r.stderr).not.toContain('tinyproxy');
  } finally {
    p.cleanup();
  }
});
