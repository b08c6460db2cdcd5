// The repository's root directory, for helpers that read deploy/, dist/ or action.yml.
import { resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
