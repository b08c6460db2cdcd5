// The exec-mode credential cache: one JSON file (0600) in the grant's private directory, written
// by the main step and rewritten by the credential plugin after each renewal. It holds the current
// token and what the plugin needs to renew it (the broker, its CA, the audience); the kubeconfig
// holds no token in this mode, only the command that reads this file.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { replacePrivateFile, writeNewPrivateFile } from './safe-fs.js';

export const CREDENTIAL_CACHE_FILE = 'credential.json';

export interface CredentialCache {
  version: 1;
  grantId: string;
  /** Secret. */
  token: string;
  tokenExpiresAt: string;
  /** When the grant ends unless renewed. */
  expiresAt: string;
  /** When this end was granted (the exchange or the last renewal): the plugin renews a third before the end. */
  grantedAt: string;
  /** Known once the broker renewed the grant: no renewal goes past it. */
  sessionEndsAt?: string;
  /** Set when the broker refused a renewal for good: the plugin then stops asking. */
  refused?: string;
  brokerUrl: string;
  brokerCa?: string;
  audience: string;
}

export class CacheError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheError';
  }
}

const TIMES = ['tokenExpiresAt', 'expiresAt', 'grantedAt'] as const;

export function parseCredentialCache(text: string): CredentialCache {
  let doc: unknown;
  try {
    doc = JSON.parse(text) as unknown;
  } catch {
    throw new CacheError('is not JSON');
  }
  const c = doc as Partial<CredentialCache> | null;
  if (!c || typeof c !== 'object' || c.version !== 1) throw new CacheError('is not a credential cache');
  for (const f of ['grantId', 'token', 'brokerUrl', 'audience', ...TIMES] as const)
    if (typeof c[f] !== 'string' || c[f] === '') throw new CacheError(`has no ${f}`);
  for (const f of TIMES) if (Number.isNaN(Date.parse(c[f]!))) throw new CacheError(`has an invalid ${f}`);
  if (c.sessionEndsAt !== undefined && Number.isNaN(Date.parse(c.sessionEndsAt)))
    throw new CacheError('has an invalid sessionEndsAt');
  return c as CredentialCache;
}

/**
 * Reads the cache, refusing anything but a regular file of this user's with mode 0600 reached
 * without a symlink: the token must come from the file the action wrote, not one planted beside it.
 */
export async function readCredentialCache(path: string): Promise<CredentialCache> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new CacheError(
        'does not exist: the grant was revoked and its files removed when the job ended (post step)',
      );
    throw new CacheError(`cannot be opened (${code ?? 'error'})`);
  }
  try {
    const st = await handle.stat();
    const uid = process.getuid?.();
    if (!st.isFile() || (st.mode & 0o777) !== 0o600 || (uid !== undefined && st.uid !== uid))
      throw new CacheError('is not a private (0600) file of this user');
    return parseCredentialCache(await handle.readFile('utf8'));
  } finally {
    await handle.close();
  }
}

const render = (cache: CredentialCache): string => `${JSON.stringify(cache)}\n`;

export const writeNewCredentialCache = (path: string, cache: CredentialCache): Promise<void> =>
  writeNewPrivateFile(path, render(cache));

export const replaceCredentialCache = (path: string, cache: CredentialCache): Promise<void> =>
  replacePrivateFile(path, render(cache));
