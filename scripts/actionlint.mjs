// Lints this repository's workflows and the example workflows with actionlint, built from its Go module
// into the git-ignored cache the first time (a pinned version; the Go module proxy is the only download).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ACTIONLINT = 'github.com/rhysd/actionlint/cmd/actionlint@v1.7.12';
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = join(resolve(process.env.K8S_EA_CACHE ?? join(repo, '.cache')), 'tools');
const binDir = join(toolsDir, `actionlint-${ACTIONLINT.split('@')[1]}`);
const binary = join(binDir, 'actionlint');

if (!existsSync(binary)) {
  const built = spawnSync('go', ['install', ACTIONLINT], {
    stdio: 'inherit',
    env: { ...process.env, GOBIN: binDir },
  });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
const files = ['.github/workflows', 'examples', 'examples/admin'].flatMap((dir) =>
  readdirSync(join(repo, dir))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => join(dir, f)),
);
const r = spawnSync(binary, files, { cwd: repo, stdio: 'inherit' });
if (r.status === 0) console.log(`actionlint: ${files.length} workflows clean`);
process.exit(r.status ?? 1);
