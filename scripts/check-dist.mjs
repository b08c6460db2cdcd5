// Fails when the committed dist/ differs from a fresh build of src/ (the bundle is what the runner runs).
// With --dir <repo>, checks another checkout (used by the test that proves this check can fail).
import { spawnSync } from 'node:child_process';

const dirFlag = process.argv.indexOf('--dir');
const cwd = dirFlag > 0 ? process.argv[dirFlag + 1] : process.cwd();
const run = (cmd, args) => spawnSync(cmd, args, { cwd, encoding: 'utf8' });

const built = run('node', ['scripts/build.mjs']);
if (built.status !== 0) {
  process.stderr.write(built.stderr);
  process.exit(1);
}
const diff = run('git', ['status', '--porcelain', '--', 'dist/']);
if (diff.status !== 0) {
  process.stderr.write(diff.stderr);
  process.exit(1);
}
if (diff.stdout.trim() !== '') {
  process.stderr.write(`dist/ is stale; run \`npm run build\` and commit dist/:\n${diff.stdout}`);
  process.exit(1);
}
process.stdout.write('dist/ is current\n');
