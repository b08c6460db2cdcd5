// File operations for credentials on a possibly shared runner: a fresh private directory, an
// exclusive 0600 create that never follows a symlink, and shredding (overwrite, fsync, unlink).
// The pattern follows configure-aws-credentials' writeFileUtf8, tightened with O_EXCL so an
// attacker cannot pre-create the file (or a symlink in its place) and read what we write.
import { constants } from 'node:fs';
import { link, lstat, mkdtemp, open, readdir, realpath, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { randomBytes, randomFillSync } from 'node:crypto';
import { dirname, join } from 'node:path';

export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

/** Refuses a parent that is a symlink or not a directory: the file would land somewhere else. */
async function assertRealDirectory(dir: string, purpose: string): Promise<void> {
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    throw new UnsafePathError(`${purpose} ${dir} does not exist (${errno(err) ?? 'error'}).`);
  }
  if (st.isSymbolicLink())
    throw new UnsafePathError(`Refusing to use ${purpose} ${dir}: it is a symbolic link.`);
  if (!st.isDirectory())
    throw new UnsafePathError(`Refusing to use ${purpose} ${dir}: it is not a directory.`);
}

/** Creates a new directory only this user can enter (mkdtemp makes it 0700 with a random name). */
export async function createPrivateDir(parent: string, prefix: string): Promise<string> {
  await assertRealDirectory(parent, 'RUNNER_TEMP');
  const dir = await mkdtemp(join(parent, prefix));
  const st = await lstat(dir);
  if (!st.isDirectory() || (st.mode & 0o777) !== 0o700)
    throw new UnsafePathError(`Private directory ${dir} was not created with mode 0700.`);
  return dir;
}

/**
 * Creates `path` with mode 0600 and writes data, failing if anything already exists there
 * (file, directory or symlink, even a dangling one). Returns the resolved real path of the parent.
 */
export async function writeNewPrivateFile(path: string, data: string): Promise<void> {
  await assertRealDirectory(dirname(path), 'the directory of');
  let handle;
  try {
    handle = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (err) {
    if (errno(err) === 'EEXIST')
      throw new UnsafePathError(
        `Refusing to write ${path}: something already exists there (file or symlink).`,
      );
    if (errno(err) === 'ELOOP')
      throw new UnsafePathError(`Refusing to write ${path}: it is a symbolic link.`);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new UnsafePathError(`Refusing to write ${path}: not a regular file.`);
    // The umask can only remove bits from 0600, but fchmod makes the mode exact whatever the umask.
    await handle.chmod(0o600);
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Resolves symlinks in the directory part, to compare a location with the workspace. */
export async function realDirectoryOf(path: string): Promise<string> {
  return realpath(dirname(path));
}

/**
 * Overwrites a regular file with random bytes, syncs, then unlinks it. A symlink is unlinked
 * without touching its target. Missing is fine: shredding twice is harmless.
 * Returns whether something was removed.
 */
export async function shredFile(path: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
  if (st.isFile()) {
    const handle = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    try {
      const chunk = Buffer.alloc(Math.min(Math.max(st.size, 1), 64 * 1024));
      for (let written = 0; written < st.size; written += chunk.length) {
        randomFillSync(chunk);
        await handle.write(chunk, 0, Math.min(chunk.length, st.size - written), written);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
  } else if (st.isDirectory()) {
    throw new UnsafePathError(`Refusing to shred ${path}: it is a directory.`);
  }
  await unlink(path);
  return true;
}

/** Shreds every regular file in a directory the action created, then removes the directory. */
export async function shredDirectory(dir: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
  if (st.isSymbolicLink()) {
    await unlink(dir); // Someone replaced our directory with a link: remove the link, not its target.
    return true;
  }
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await rm(p, { recursive: true, force: true });
    else await shredFile(p);
  }
  await rmdir(dir);
  return true;
}

/**
 * Replaces `path` (a file this action wrote) with new contents atomically: readers see the old file
 * or the new one, never half of either. The new file is written exclusively (0600, never through a
 * symlink) beside it and renamed over it; the old contents, kept reachable by a hard link for that
 * moment, are then shredded rather than left in freed blocks.
 */
export async function replacePrivateFile(path: string, data: string): Promise<void> {
  const suffix = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const next = `${path}.new-${suffix}`;
  const old = `${path}.old-${suffix}`;
  await writeNewPrivateFile(next, data);
  let kept = false;
  try {
    await link(path, old);
    kept = true;
  } catch (err) {
    if (errno(err) !== 'ENOENT') {
      await unlink(next).catch(() => undefined);
      throw err;
    }
  }
  try {
    await rename(next, path);
  } catch (err) {
    await unlink(next).catch(() => undefined);
    if (kept) await unlink(old).catch(() => undefined);
    throw err;
  }
  if (kept) await shredFile(old);
}
