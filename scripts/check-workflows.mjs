// The workflow security rules (workflow-rules.mjs) on every workflow here and in examples/: exit 1 with
// one line per finding (file:line, rule, what to do), or 0. `npm run lint:workflows` runs it after
// actionlint.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './go-tool.mjs';
import { checkWorkflow, WAIVERS } from './workflow-rules.mjs';

export const WORKFLOW_DIRS = ['.github/workflows', 'examples', 'examples/admin'];

const files = WORKFLOW_DIRS.flatMap((dir) =>
  readdirSync(join(repoRoot, dir))
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .map((f) => join(dir, f)),
);
const findings = files.flatMap((f) =>
  checkWorkflow(readFileSync(join(repoRoot, f), 'utf8'), f, { examples: f.startsWith('examples') }),
);
for (const f of findings) console.error(`${f.file}:${f.line}: [${f.rule}] ${f.message}`);
if (findings.length > 0) process.exit(1);
console.log(
  `workflow rules: ${files.length} workflows clean (pinned uses, least permissions, no untrusted interpolation; ${WAIVERS.length} waivers)`,
);
