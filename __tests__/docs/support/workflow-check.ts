// Checks a GitHub Actions workflow's use of this action against action.yml, the way a reader
// copying an example would be bitten: unknown or missing inputs, input values the action's own
// parser refuses, no OIDC permission for the job, and step-output references to outputs that do
// not exist. Returns the problems as sentences; an empty list means the workflow is fine.
import { parseInputs } from '../../../src/action/inputs.js';

export interface ActionSpec {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, unknown>;
}

type Permissions = string | Record<string, string> | undefined;

interface Step {
  id?: string;
  uses?: string;
  with?: Record<string, unknown>;
  [key: string]: unknown;
}

interface Job {
  permissions?: Permissions;
  steps?: Step[];
  /** A job that calls a reusable workflow. */
  uses?: string;
  [key: string]: unknown;
}

export interface Workflow {
  on?: unknown;
  permissions?: Permissions;
  jobs?: Record<string, Job>;
}

/** `owner/k8s-ephemeral-access@ref` (optionally a subdirectory), or `./` for this repository. */
export function usesThisAction(uses: string | undefined): boolean {
  if (uses === undefined) return false;
  return uses === './' || uses === '.' || /^[\w.-]+\/k8s-ephemeral-access(\/[\w./-]+)?@[\w./-]+$/.test(uses);
}

/** Job-level permissions replace the workflow's entirely; they do not merge. */
function grantsIdToken(job: Job, workflow: Workflow): boolean {
  const effective = job.permissions ?? workflow.permissions;
  if (effective === 'write-all') return true;
  return typeof effective === 'object' && effective !== null && effective['id-token'] === 'write';
}

/** Every string inside a value (step fields, env, with, outputs), for expression scanning. */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

/** `steps.<id>.outputs.<name>` and `steps.<id>.outputs['<name>']` inside `${{ }}` expressions. */
export function stepOutputReferences(text: string): { step: string; output: string }[] {
  const refs: { step: string; output: string }[] = [];
  for (const expr of text.matchAll(/\$\{\{([\s\S]*?)\}\}/g)) {
    const body = expr[1]!;
    for (const m of body.matchAll(/\bsteps\.([A-Za-z_][\w-]*)\.outputs\.([A-Za-z_][\w-]*)/g))
      refs.push({ step: m[1]!, output: m[2]! });
    for (const m of body.matchAll(/\bsteps\.([A-Za-z_][\w-]*)\.outputs\[\s*'([^']+)'\s*\]/g))
      refs.push({ step: m[1]!, output: m[2]! });
  }
  return refs;
}

/** Example values for inputs given as expressions, so the rest can still go through the parser. */
const SAMPLE_VALUES: Record<string, string> = {
  'broker-url': 'https://k8s-access.example.com',
  namespace: 'staging',
  role: 'deployer',
  ttl: '900',
  'context-name': 'staging',
  audience: 'k8s-ephemeral-access',
  'kubeconfig-path': '/home/runner/work/_temp/kubeconfig',
  'export-kubeconfig': 'true',
  revoke: 'true',
};

function inputValueProblem(withInputs: Record<string, unknown>): string | undefined {
  const values: Record<string, string> = {};
  for (const [name, raw] of Object.entries(withInputs)) {
    const text = String(raw).trim();
    values[name] = text.includes('${{') ? (SAMPLE_VALUES[name] ?? '') : text;
  }
  try {
    parseInputs((name) => values[name] ?? '', {
      RUNNER_TEMP: '/home/runner/work/_temp',
      GITHUB_WORKSPACE: '/home/runner/work/repo/repo',
    });
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

export function checkWorkflow(workflow: Workflow, action: ActionSpec): string[] {
  const problems: string[] = [];
  const jobs = workflow.jobs ?? {};
  if (Object.keys(jobs).length === 0) problems.push('the workflow has no jobs');
  const required = Object.entries(action.inputs)
    .filter(([, spec]) => spec.required === true && spec.default === undefined)
    .map(([name]) => name);

  for (const [jobName, job] of Object.entries(jobs)) {
    const where = `job "${jobName}"`;
    // A job calling a reusable workflow must pass the OIDC permission on: the called workflow
    // cannot get more than its caller grants.
    if (job.uses !== undefined && !grantsIdToken(job, workflow))
      problems.push(`${where} calls ${job.uses} without granting permissions: id-token: write`);

    const steps = job.steps ?? [];
    const actionSteps = new Set<string>();
    const stepIds = new Set<string>();
    for (const [i, step] of steps.entries()) {
      if (step.id !== undefined) stepIds.add(step.id);
      if (!usesThisAction(step.uses)) continue;
      const stepWhere = `${where}, step ${step.id ?? i + 1}`;
      if (step.id !== undefined) actionSteps.add(step.id);
      const withInputs = step.with ?? {};
      for (const name of Object.keys(withInputs))
        if (!(name in action.inputs)) problems.push(`${stepWhere}: input "${name}" is not in action.yml`);
      for (const name of required)
        if (!(name in withInputs)) problems.push(`${stepWhere}: required input "${name}" is missing`);
      const valueProblem = inputValueProblem(withInputs);
      if (valueProblem) problems.push(`${stepWhere}: ${valueProblem}`);
      if (!grantsIdToken(job, workflow))
        problems.push(`${stepWhere}: neither the job nor the workflow grants permissions: id-token: write`);
    }

    for (const ref of strings(job).flatMap(stepOutputReferences)) {
      if (!stepIds.has(ref.step))
        problems.push(`${where}: steps.${ref.step}.outputs.${ref.output} names no step of this job`);
      else if (actionSteps.has(ref.step) && !(ref.output in action.outputs))
        problems.push(`${where}: steps.${ref.step}.outputs.${ref.output} is not an output in action.yml`);
    }
  }
  return problems;
}

/** Whether any job of the workflow uses the action or calls a reusable workflow. */
export function usesActionOrReusable(workflow: Workflow): boolean {
  return Object.values(workflow.jobs ?? {}).some(
    (job) => job.uses !== undefined || (job.steps ?? []).some((s) => usesThisAction(s.uses)),
  );
}
