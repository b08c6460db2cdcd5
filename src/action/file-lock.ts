// A lock between processes on one runner: an exclusively created file beside the one it guards.
// Used by the credential plugin so that two kubectl processes that need a renewal at the same
// moment renew once (the second then finds the renewed cache) instead of spending two GitHub JWTs.
import { constants } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';

export interface LockOptions {
  /** Give up after this long. */
  waitMs: number;
  /** A lock older than this was left by a process that died: take it over. */
  staleMs: number;
  sleep: (ms: number) => Promise<void>;
}

/** Times are the wall clock's, not an injected one: a lock's age is read from its file's mtime. */
export async function withFileLock<T>(path: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    try {
      const handle = await open(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await lstat(path).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > options.staleMs) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${path}`);
    await options.sleep(50 + Math.floor(Math.random() * 50));
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => undefined);
  }
}
