// Lints this repository's workflows and the example workflows with actionlint, built from its Go module
// into the git-ignored cache the first time (go-tool.mjs).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGoTool, repoRoot as repo } from './go-tool.mjs';

let binary;
try {
  binary = ensureGoTool('actionlint');
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
const files = ['.github/workflows', 'examples', 'examples/admin'].flatMap((dir) =>
  readdirSync(join(repo, dir))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => join(dir, f)),
);
const r = spawnSync(binary, files, { cwd: repo, stdio: 'inherit' });
if (r.status === 0) console.log(`actionlint: ${files.length} workflows clean`);
process.exit(r.status ?? 1);
