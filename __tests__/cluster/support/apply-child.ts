// A child process of idempotent-apply.test.ts: loads, says "ready", waits for a line on stdin (the
// start signal every child gets at the same moment), then applies the YAML file it was given,
// either as the fixture does or with the client-side `kubectl apply` the fixture used before.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { kubectlAdmin } from '../../../test/support/cluster.js';
import { applyIdempotently } from '../../../test/support/deploy-rbac.js';

const [file, mode] = process.argv.slice(2) as [string, 'fixture' | 'client-side'];
const yaml = readFileSync(file, 'utf8');
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  lines.close();
  try {
    if (mode === 'client-side') kubectlAdmin(['apply', '-f', '-'], yaml);
    else applyIdempotently(yaml);
  } catch (err) {
    process.stderr.write(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  }
});
process.stdout.write('ready\n');
