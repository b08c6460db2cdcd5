// The README's quick-start (the part above its first `## ` heading) and "## Development" commands
// must be ones this repository supports, and its test command must be the one CI runs.
// Actually running the quick start on a fresh clone is too slow for the unit suite; that is
// scripts/check-readme.mjs, which must run exactly the commands checked here.
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bashBlocks,
  commandLines,
  commandProblem,
  repoFacts,
  simpleCommands,
  testCommand,
} from './support/readme-commands.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const repo = repoFacts(repoRoot);

const quickStart = bashBlocks(readme, 'top').flatMap(commandLines);
const development = bashBlocks(readme, 'Development').flatMap(commandLines);
const problemsOf = (lines: string[]) =>
  lines.flatMap((l) => simpleCommands(l).flatMap((w) => commandProblem(w, repo) ?? []));

describe('README commands', () => {
  test('the quick start says how to run the demo and the tests', () => {
    expect(quickStart.some((l) => /\bnpm run demo\b/.test(l))).toBe(true);
    expect(testCommand(quickStart)).toBeDefined();
  });

  test('every quick-start command is supported by this repository', () => {
    expect(problemsOf(quickStart)).toEqual([]);
  });

  test('the Development section has commands, and every one is supported', () => {
    expect(development.length).toBeGreaterThan(0);
    expect(problemsOf(development)).toEqual([]);
  });

  test("the README's test command is the one .ci/run runs", () => {
    const ci = commandLines(readFileSync(join(repoRoot, '.ci', 'run'), 'utf8'));
    const readmeTest = testCommand(quickStart);
    expect(readmeTest).toBeDefined();
    expect(testCommand(ci)).toBe(readmeTest);
    expect(ci).toContain(readmeTest);
  });

  test('scripts/check-readme.mjs runs exactly the quick-start commands checked here', () => {
    const r = spawnSync(process.execPath, ['scripts/check-readme.mjs', '--dry-run'], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const listed = r.stdout.trim().split('\n').flatMap(commandLines);
    expect(listed).toEqual(quickStart);
  });
});

// The checker must reject what a newcomer could not run, or the tests above prove nothing.
describe('the README command checker', () => {
  const problem = (line: string) => problemsOf([line]);

  test('accepts the forms a README uses', () => {
    for (const line of [
      'npm ci && npm run demo',
      'npm test',
      'npm run -s lint',
      'npm run demo -- --keep',
      'npm run demo -- --kubeconfig ~/.kube/admin.kubeconfig',
      'npx tsc --noEmit -p .',
      'node scripts/cluster.mjs up',
      'kubectl get pods | cat',
    ])
      expect({ line, problems: problem(line) }).toEqual({ line, problems: [] });
  });

  test('rejects unknown npm scripts, demo options, files, binaries and tools', () => {
    expect(problem('npm run no-such-script')).toEqual([
      'npm run no-such-script: package.json has no script "no-such-script"',
    ]);
    expect(problem('npm run demo -- --verbose')).toEqual([
      expect.stringContaining("the demo refuses these options: Unknown option '--verbose'"),
    ]);
    expect(problem('node scripts/missing.mjs')).toEqual([
      'node scripts/missing.mjs: scripts/missing.mjs does not exist',
    ]);
    expect(problem('npx no-such-binary')).toEqual([
      'npx no-such-binary: no-such-binary is not installed by npm ci',
    ]);
    expect(problem('npm ci && make all')).toEqual([
      'make all: "make" is neither an npm script, a file of this repository nor a prerequisite tool',
    ]);
    expect(problem('yarn install')).toHaveLength(1);
  });

  test('reads blocks of one section only, joins continuations and drops comments', () => {
    const md = [
      '# T',
      '```bash',
      'npm ci # install',
      '```',
      '## Other',
      '```bash',
      'npm run other',
      '```',
      '## Development',
      '```bash',
      'npm run a \\',
      '  -- --x   # comment',
      "echo '# not a comment'",
      '```',
      '```yaml',
      'key: value',
      '```',
    ].join('\n');
    expect(bashBlocks(md, 'top').flatMap(commandLines)).toEqual(['npm ci']);
    expect(bashBlocks(md, 'Development').flatMap(commandLines)).toEqual([
      'npm run a -- --x',
      "echo '# not a comment'",
    ]);
    expect(bashBlocks(md, 'Missing')).toEqual([]);
  });
});
