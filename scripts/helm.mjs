// Runs helm (pinned, built from its Go module into the git-ignored cache the first time, go-tool.mjs)
// with the given arguments: `node scripts/helm.mjs lint deploy/chart/k8s-ephemeral-access`.
import { spawnSync } from 'node:child_process';
import { ensureGoTool, repoRoot } from './go-tool.mjs';

let binary;
try {
  binary = ensureGoTool('helm');
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
const r = spawnSync(binary, process.argv.slice(2), { cwd: repoRoot, stdio: 'inherit' });
process.exit(r.status ?? 1);
