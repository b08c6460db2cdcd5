// Loads the policy file named in the broker config (once, at start).
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/config-error.js';
import { parsePolicy, type PolicyContext } from './parse-policy.js';
import type { Policy } from './types.js';

export function loadPolicy(path: string, context: PolicyContext = {}): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError([
      { file: path, line: undefined, field: '', message: `cannot read the policy file (${code})` },
    ]);
  }
  return parsePolicy(text, path, context);
}
