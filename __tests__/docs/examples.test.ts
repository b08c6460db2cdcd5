// The example workflows in examples/ must work when copied: every use of the action names only
// inputs action.yml declares, gives the required ones values the action's own input parser
// accepts, runs in a job that may request an OIDC token, and reads only declared outputs.
// The checker itself is tested with broken workflows, so a green run means something.
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import {
  checkWorkflow,
  stepOutputReferences,
  usesActionOrReusable,
  usesThisAction,
  type ActionSpec,
  type Workflow,
} from './support/workflow-check.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const action = load(readFileSync(join(repoRoot, 'action.yml'), 'utf8')) as ActionSpec;
const exampleFiles = readdirSync(join(repoRoot, 'examples'))
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const examples = new Map(
  exampleFiles.map((f) => [f, load(readFileSync(join(repoRoot, 'examples', f), 'utf8')) as Workflow]),
);

type AnyJob = {
  steps?: { uses?: string; run?: string; with?: Record<string, unknown> }[];
  strategy?: { matrix?: unknown };
  environment?: unknown;
  uses?: string;
  with?: Record<string, unknown>;
};
const jobsOf = (w: Workflow): AnyJob[] => Object.values(w.jobs ?? {}) as AnyJob[];
const actionJobs = (w: Workflow): AnyJob[] =>
  jobsOf(w).filter((j) => (j.steps ?? []).some((s) => usesThisAction(s.uses)));

describe('examples/*.yml', () => {
  test('there are example workflows to check', () => {
    expect(exampleFiles.length).toBeGreaterThanOrEqual(5);
  });

  test.each(exampleFiles)('%s uses the action as action.yml declares it', (file) => {
    const workflow = examples.get(file)!;
    expect(usesActionOrReusable(workflow)).toBe(true);
    expect(checkWorkflow(workflow, action)).toEqual([]);
  });

  test('every use of the action pins the v1 major tag (docs/releasing.md)', () => {
    const refs = [...examples.values()].flatMap((w) =>
      jobsOf(w).flatMap((j) => (j.steps ?? []).map((s) => s.uses).filter((u) => usesThisAction(u))),
    );
    expect(refs.length).toBeGreaterThanOrEqual(5);
    for (const ref of refs) expect(ref).toMatch(/^octo-org\/k8s-ephemeral-access@v1$/);
  });

  test('the set covers kubectl, helm, a matrix, a reusable workflow and a protected environment', () => {
    const all = [...examples.values()];
    const runs = (w: Workflow) => actionJobs(w).flatMap((j) => (j.steps ?? []).map((s) => s.run ?? ''));
    expect(all.some((w) => runs(w).some((r) => /\bkubectl (apply|set image)\b/.test(r)))).toBe(true);
    expect(all.some((w) => runs(w).some((r) => /\bhelm upgrade\b/.test(r)))).toBe(true);
    expect(all.some((w) => actionJobs(w).some((j) => j.strategy?.matrix !== undefined))).toBe(true);
    expect(
      all.some(
        (w) =>
          typeof w.on === 'object' && w.on !== null && 'workflow_call' in w.on && actionJobs(w).length > 0,
      ),
    ).toBe(true);
    expect(all.some((w) => actionJobs(w).some((j) => j.environment !== undefined))).toBe(true);
  });

  test('helm examples keep release records out of Secrets (jobs never get Secrets access)', () => {
    for (const [file, w] of examples) {
      for (const job of actionJobs(w)) {
        if (!(job.steps ?? []).some((s) => /\bhelm (upgrade|install)\b/.test(s.run ?? ''))) continue;
        expect({ file, env: (job as { env?: Record<string, string> }).env?.HELM_DRIVER }).toEqual({
          file,
          env: 'configmap',
        });
      }
    }
  });

  test('the caller passes exactly the inputs the reusable workflow declares', () => {
    const reusable = [...examples.values()].find(
      (w) => typeof w.on === 'object' && w.on !== null && 'workflow_call' in w.on,
    )!;
    const declared = (reusable.on as { workflow_call: { inputs: Record<string, { required?: boolean }> } })
      .workflow_call.inputs;
    const callers = [...examples.values()].flatMap((w) => jobsOf(w).filter((j) => j.uses !== undefined));
    expect(callers.length).toBeGreaterThan(0);
    for (const caller of callers) {
      expect(caller.uses).toMatch(/\/\.github\/workflows\/deploy\.yml@v\d+$/);
      const passed = Object.keys(caller.with ?? {});
      for (const name of passed) expect(Object.keys(declared)).toContain(name);
      for (const [name, spec] of Object.entries(declared)) if (spec.required) expect(passed).toContain(name);
    }
  });
});

// The checker must find real mistakes; otherwise the tests above prove nothing.
describe('the workflow checker', () => {
  const good = (): Workflow => ({
    on: { push: {} },
    permissions: { 'id-token': 'write', contents: 'read' },
    jobs: {
      deploy: {
        steps: [
          {
            id: 'k8s',
            uses: 'octo-org/k8s-ephemeral-access@v1',
            with: { 'broker-url': 'https://b.example.com', namespace: 'staging', role: 'deployer' },
          },
          { run: 'echo "$G"', env: { G: '${{ steps.k8s.outputs.grant-id }}' } },
        ],
      },
    },
  });

  test('accepts a correct workflow', () => {
    expect(checkWorkflow(good(), action)).toEqual([]);
  });

  test('finds an input action.yml does not declare', () => {
    const w = good();
    w.jobs!.deploy!.steps![0]!.with!.token = 'x';
    expect(checkWorkflow(w, action)).toEqual(['job "deploy", step k8s: input "token" is not in action.yml']);
  });

  test('finds a missing required input', () => {
    const w = good();
    delete w.jobs!.deploy!.steps![0]!.with!.role;
    expect(checkWorkflow(w, action)).toEqual(
      expect.arrayContaining(['job "deploy", step k8s: required input "role" is missing']),
    );
  });

  test("finds a value the action's parser refuses", () => {
    const w = good();
    w.jobs!.deploy!.steps![0]!.with!.ttl = '15m';
    expect(checkWorkflow(w, action)).toEqual([
      expect.stringContaining('Input "ttl" must be a whole number of seconds, got "15m"'),
    ]);
  });

  test('finds a job without id-token: write, including job permissions that replace the workflow ones', () => {
    const w = good();
    w.jobs!.deploy!.permissions = { contents: 'read' };
    expect(checkWorkflow(w, action)).toEqual([
      'job "deploy", step k8s: neither the job nor the workflow grants permissions: id-token: write',
    ]);
    const noPermissions = good();
    delete noPermissions.permissions;
    expect(checkWorkflow(noPermissions, action)).toHaveLength(1);
  });

  test('finds a reference to an output action.yml does not declare, or to an unknown step', () => {
    const w = good();
    w.jobs!.deploy!.steps![1]!.env = {
      T: '${{ steps.k8s.outputs.token }}',
      U: "${{ steps.k9.outputs['x'] }}",
    };
    expect(checkWorkflow(w, action)).toEqual([
      'job "deploy": steps.k8s.outputs.token is not an output in action.yml',
      'job "deploy": steps.k9.outputs.x names no step of this job',
    ]);
  });

  test('finds a caller of a reusable workflow that does not pass id-token: write on', () => {
    const w: Workflow = {
      permissions: { contents: 'read' },
      jobs: { call: { uses: 'octo-org/deploy-workflows/.github/workflows/deploy.yml@v1' } },
    };
    expect(checkWorkflow(w, action)).toEqual([
      'job "call" calls octo-org/deploy-workflows/.github/workflows/deploy.yml@v1 without granting permissions: id-token: write',
    ]);
  });

  test('recognises the ways a workflow refers to this action and to step outputs', () => {
    expect(usesThisAction('./')).toBe(true);
    expect(usesThisAction('octo-org/k8s-ephemeral-access@v1')).toBe(true);
    expect(usesThisAction('octo-org/k8s-ephemeral-access@0123456789abcdef0123456789abcdef01234567')).toBe(
      true,
    );
    expect(usesThisAction('octo-org/k8s-ephemeral-access-fork@v1')).toBe(false);
    expect(usesThisAction('actions/checkout@v5')).toBe(false);
    expect(
      stepOutputReferences(
        "a ${{ steps.a.outputs.grant-id }} ${{ steps.b.outputs['expires-at'] }} steps.c.outputs.x",
      ),
    ).toEqual([
      { step: 'a', output: 'grant-id' },
      { step: 'b', output: 'expires-at' },
    ]);
  });
});
