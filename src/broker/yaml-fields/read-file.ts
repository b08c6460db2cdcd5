// Reading one of the operator's files (the broker config, the policy, the edge's config): a file that
// cannot be read is a ConfigError naming it, like every other problem of the file.
import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.js';

/**
 * The bytes of the file at `readPath` (default `path`); throws ConfigError naming `path` as given,
 * "cannot read the <what> (<errno code>)".
 */
export function readOperatorFile(path: string, what: string, readPath = path): Buffer {
  try {
    return readFileSync(readPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError([
      { file: path, line: undefined, field: '', message: `cannot read the ${what} (${code})` },
    ]);
  }
}
