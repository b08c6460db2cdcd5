// The workflow security rules (scripts/workflow-rules.mjs, run by `npm run lint:workflows`): each catches
// what it is for, lets the safe form pass, and this repository's workflows and examples pass them all.
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../test/support/repo-root.js';

interface Finding {
  file: string;
  line: number;
  rule: 'pinned' | 'permissions' | 'injection';
  message: string;
}
// A variable specifier: the script is plain JavaScript without type declarations.
const specifier = new URL('../../scripts/workflow-rules.mjs', import.meta.url).href;
const { checkWorkflow } = (await import(specifier)) as {
  checkWorkflow(source: string, file: string, o?: { examples?: boolean }): Finding[];
};

const SHA = 'b4ffde65f46336ab88eb53be808477a3936bae11';
const wf = (job: string, top = 'permissions:\n  contents: read\n') =>
  `name: t\non: push\n${top}jobs:\n  build:\n    runs-on: ubuntu-latest\n${job}`;
const steps = (...lines: string[]) => `    steps:\n${lines.map((l) => `      ${l}`).join('\n')}\n`;
const rules = (source: string, o?: { examples?: boolean }) =>
  checkWorkflow(source, 'w.yml', o).map((f) => `${f.rule}:${f.line}`);

describe('pinned: every uses: names a full commit SHA with its version', () => {
  test.each([
    ['a tag', `- uses: actions/checkout@v4`],
    ['a branch', `- uses: actions/checkout@main`],
    ['a short SHA', `- uses: actions/checkout@b4ffde6`],
    ['a SHA without its version', `- uses: actions/checkout@${SHA}`],
    ['an image by tag', `- uses: docker://alpine:3.20`],
    ['a reusable workflow by tag', `- uses: octo-org/w/.github/workflows/x.yml@v1`],
  ])('%s is a finding', (_name, line) => {
    expect(rules(wf(steps(line)))).toEqual(['pinned:9']);
  });

  test.each([
    ['a SHA and its version', `- uses: actions/checkout@${SHA} # v4.1.1`],
    ['a local action', `- uses: ./.github/actions/x`],
    ['an image by digest', `- uses: docker://alpine@sha256:${'a'.repeat(64)}`],
  ])('%s passes', (_name, line) => {
    expect(rules(wf(steps(line)))).toEqual([]);
  });

  test("a job calling a reusable workflow is checked too; examples may name the reader's own repositories by tag", () => {
    const call = `name: t\non: push\npermissions:\n  contents: read\njobs:\n  d:\n    uses: octo-org/deploy-workflows/.github/workflows/deploy.yml@v1\n`;
    expect(rules(call)).toEqual(['pinned:7']);
    expect(rules(call, { examples: true })).toEqual([]);
    const action = wf(steps('- uses: octo-org/k8s-ephemeral-access@v1'));
    expect(rules(action, { examples: true })).toEqual([]);
    // Only those placeholders: a real third-party action in an example is pinned like anywhere else.
    expect(rules(wf(steps('- uses: actions/checkout@v5')), { examples: true })).toEqual(['pinned:9']);
  });
});

describe('permissions: explicit and least, per job or read-only for the workflow', () => {
  test('a job without permissions under a workflow without any is a finding', () => {
    expect(rules(wf(steps('- run: make'), ''))).toEqual(['permissions:4']);
  });

  test('write permissions at the workflow level, and write-all / read-all anywhere, are findings', () => {
    expect(rules(wf(steps('- run: make'), 'permissions:\n  contents: write\n'))).toEqual([
      'permissions:3',
      'permissions:6',
    ]);
    expect(rules(wf(steps('- run: make'), 'permissions: write-all\n'))).toContain('permissions:3');
    expect(rules(wf(`    permissions: read-all\n${steps('- run: make')}`))).toEqual(['permissions:6']);
  });

  test("a job's own permissions, or a read-only workflow's, pass", () => {
    expect(rules(wf(steps('- run: make')))).toEqual([]);
    expect(rules(wf(`    permissions:\n      contents: write\n${steps('- run: make')}`, ''))).toEqual([]);
  });
});

describe('injection: no untrusted context interpolated into a script', () => {
  test.each([
    'github.event.pull_request.title',
    'github.event.issue.body',
    'github.event.comment.body',
    'github.head_ref',
    'github.event.pull_request.head.ref',
    'github.event.head_commit.message',
    'github.event.commits[0].author.email',
    'github.event.workflow_run.head_branch',
    'github.event.inputs.name',
    'inputs.name',
  ])('${{ %s }} in run: is a finding', (expr) => {
    expect(rules(wf(steps('- run: |', `    echo "\${{ ${expr} }}"`)))).toEqual(['injection:10']);
  });

  test("in github-script's script: too", () => {
    const line = `- uses: actions/github-script@${SHA} # v7.0.1`;
    const source = wf(steps(line, '  with:', '    script: console.log("${{ github.event.issue.title }}")'));
    expect(rules(source)).toEqual(['injection:11']);
  });

  test('through env:, and trusted contexts in run:, pass', () => {
    const safe = steps(
      '- env:',
      '    TITLE: ${{ github.event.pull_request.title }}',
      '  run: echo "$TITLE" "${{ github.sha }}" "${{ matrix.namespace }}" "${{ steps.k8s.outputs.context }}"',
    );
    expect(rules(wf(safe))).toEqual([]);
  });
});

test("this repository's workflows and examples pass every rule (npm run lint:workflows)", () => {
  const r = spawnSync(process.execPath, ['scripts/check-workflows.mjs'], { cwd: repoRoot, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/workflow rules: \d+ workflows clean .*0 waivers/);
});
