// Builds a bundle when it is missing or older than its sources, for everything that runs the
// built files (tests, bench/, the demo): the action's dist/ and the broker's build/broker/.
// Under a lock directory in this checkout's .cache/, so parallel jest workers neither build twice
// nor read a half-written bundle; other checkouts on the machine are not held up.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const repoRoot = resolve(import.meta.dirname, '..', '..');

export interface BuildTarget {
  /** The argument to scripts/build.mjs. */
  name: 'action' | 'broker';
  /** Repository-relative files the build writes. */
  outputs: string[];
  /** Repository-relative files and directories the outputs are built from. */
  sources: string[];
}

export const ACTION_BUILD: BuildTarget = {
  name: 'action',
  outputs: ['dist/main/index.js', 'dist/post/index.js', 'dist/credential/index.js'],
  sources: ['src/action', 'src/shared', 'scripts/build.mjs'],
};

export const BROKER_BUILD: BuildTarget = {
  name: 'broker',
  outputs: ['build/broker/index.js'],
  sources: ['src/broker', 'src/shared', 'scripts/build.mjs'],
};

/** The newest modification time of a file, or of any file below a directory. */
export function newestMtime(path: string): number {
  if (!statSync(path).isDirectory()) return statSync(path).mtimeMs;
  let newest = 0;
  for (const e of readdirSync(path, { withFileTypes: true, recursive: true }))
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  return newest;
}

/** Why the target must be built, or undefined when its outputs are current. */
export function staleness(target: BuildTarget, root = repoRoot): string | undefined {
  const missing = target.outputs.filter((f) => !existsSync(join(root, f)));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  const built = Math.min(...target.outputs.map((f) => statSync(join(root, f)).mtimeMs));
  const changed = target.sources.filter((s) => newestMtime(join(root, s)) > built);
  return changed.length > 0 ? `${changed.join(', ')} changed after the build` : undefined;
}

/** Builds the target unless it is current; resolves with the absolute paths of its outputs. */
export async function ensureBuilt(target: BuildTarget, root = repoRoot): Promise<string[]> {
  const outputs = target.outputs.map((f) => join(root, f));
  if (!staleness(target, root)) return outputs;
  const release = await acquireLock(join(root, '.cache', 'build.lock'));
  try {
    // Another process may have built it while this one waited.
    if (staleness(target, root)) await runBuild(target.name, root);
  } finally {
    release();
  }
  return outputs;
}

export const ensureActionBuilt = async (): Promise<void> => {
  await ensureBuilt(ACTION_BUILD);
};

/** Resolves with the path of the broker bundle. */
export const ensureBrokerBuilt = async (): Promise<string> => (await ensureBuilt(BROKER_BUILD))[0]!;

/** Asynchronous on purpose: an OIDC issuer or broker in the calling process must keep answering. */
function runBuild(name: string, root: string): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['scripts/build.mjs', name], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', fail);
    child.on('close', (code) =>
      code === 0 ? done() : fail(new Error(`build ${name} failed (exit ${code}):\n${stderr}`)),
    );
  });
}

const LOCK_STALE_MS = 120_000;

/** A lock held by a process that is gone, or for longer than any build takes, is broken. */
function isStale(lock: string): boolean {
  try {
    const pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    process.kill(pid, 0);
  } catch (err) {
    // No pid file yet: the holder is between mkdir and write. Fall through to the age check.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  try {
    return Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS;
  } catch {
    return false; // released meanwhile
  }
}

async function acquireLock(lock: string): Promise<() => void> {
  mkdirSync(join(lock, '..'), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (isStale(lock)) rmSync(lock, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
}
