// Runs the broker bundle under `node --cpu-prof`, for `BENCH_PROFILE=1 npm run bench`: the bench
// passes this file as the broker entry; arguments and signals are forwarded, output is inherited.
// Profiles land in .cache/bench-profiles/ of this checkout, so checkouts side by side keep their own
// (open them in Chrome DevTools or speedscope).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(checkout, '.cache', 'bench-profiles');
mkdirSync(dir, { recursive: true });
const entry = join(checkout, 'build', 'broker', 'index.js');
const child = spawn(
  process.execPath,
  ['--cpu-prof', `--cpu-prof-dir=${dir}`, entry, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
