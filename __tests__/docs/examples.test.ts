// The example workflows in examples/ must work when copied: every use of the action names only
// inputs action.yml declares, gives the required ones values the action's own input parser
// accepts, runs in a job that may request an OIDC token, and reads only declared outputs.
// The checker itself is tested with broken workflows, so a green run means something.
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parsePolicy } from '../../src/broker/policy/index.js';
import type { VerifiedClaims } from '../../src/broker/types.js';
import type { ExchangeRequest } from '../../src/shared/api.js';
import type { BrokerError } from '../../src/shared/errors.js';
import { defaultClaims } from '../../test/support/oidc-issuer.js';
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

const EXAMPLE_REPO = {
  repository: 'octo-org/web',
  repository_id: '123456789',
  repository_owner: 'octo-org',
  repository_owner_id: '987654',
};

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

// Every use of the action, as GitHub would run it, against deploy/examples/policy.yaml with the
// broker's own policy engine: the claims its token would carry (the example repository's IDs, the
// ref and event of each trigger, the job's environment, the workflow ref) and the namespace, role
// and ttl it asks for, for each matrix value, and for the reusable workflow as its caller runs it.
describe('examples/*.yml against deploy/examples/policy.yaml', () => {
  const policy = parsePolicy(
    readFileSync(join(repoRoot, 'deploy', 'examples', 'policy.yaml'), 'utf8'),
    'deploy/examples/policy.yaml',
  );
  const uses = exampleUses();

  test('every example that uses the action is evaluated', () => {
    const files = new Set(uses.flatMap((u) => u.file.split(' -> ')));
    for (const [file, w] of examples)
      if (actionJobs(w).length > 0 || jobsOf(w).some((j) => j.uses))
        expect({ file, evaluated: files.has(file) || undefined }).toEqual({ file, evaluated: true });
    expect(uses.length).toBeGreaterThanOrEqual(6);
  });

  test.each(uses.map((u) => [u.label, u] as const))('%s is granted', (_label, u) => {
    const grant = policy.authorize(u.claims, u.request);
    expect(grant).toMatchObject({ namespace: u.request.namespace, role: u.request.role });
  });

  test('the evaluation refuses what the policy does not allow (so the grants above mean something)', () => {
    const u = uses.find((x) => x.file === 'kubectl-deploy.yml')!;
    const refusal = (claims: Record<string, unknown>, request: ExchangeRequest) => {
      try {
        policy.authorize({ ...u.claims, ...claims } as VerifiedClaims, request);
        return 'granted';
      } catch (err) {
        return (err as BrokerError).reason;
      }
    };
    expect(refusal({}, { ...u.request, ttlSeconds: 1200 })).toBe('ttl_exceeds_rule');
    expect(refusal({}, { ...u.request, namespace: 'production' })).toBe('namespace_not_allowed');
    expect(refusal({ ref: 'refs/heads/feature' }, u.request)).toBe('no_matching_rule');
  });
});

interface ExampleUse {
  file: string;
  label: string;
  claims: VerifiedClaims;
  request: ExchangeRequest;
}

/** The ref and event of each trigger that can start the workflow (workflow_dispatch: main). */
function triggers(on: unknown): { event: string; ref: string }[] {
  const out: { event: string; ref: string }[] = [];
  for (const [event, spec] of Object.entries(
    (on ?? {}) as Record<string, { branches?: string[]; tags?: string[] } | null>,
  )) {
    if (event === 'workflow_call') continue;
    if (event === 'workflow_dispatch') out.push({ event, ref: 'refs/heads/main' });
    else if (event === 'push') {
      for (const b of spec?.branches ?? []) out.push({ event, ref: `refs/heads/${b}` });
      // A tag the pattern matches: its * stands for a version.
      for (const t of spec?.tags ?? []) out.push({ event, ref: `refs/tags/${t.replace('*', '1.2.0')}` });
    } else throw new Error(`examples.test.ts does not know trigger "${event}": teach it`);
  }
  return out;
}

/** Replaces the ${{ }} expressions the examples use; anything else is an error to teach. */
function resolve(value: unknown, vars: Record<string, string>): string {
  return String(value).replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_m, expr: string) => {
    if (!(expr in vars)) throw new Error(`examples.test.ts cannot resolve \${{ ${expr} }}`);
    return vars[expr]!;
  });
}

function matrixValues(job: AnyJob): Record<string, string>[] {
  const matrix = job.strategy?.matrix as Record<string, unknown[]> | undefined;
  if (!matrix) return [{}];
  let rows: Record<string, string>[] = [{}];
  for (const [key, values] of Object.entries(matrix)) {
    if (!Array.isArray(values)) throw new Error(`matrix key ${key} is not a list`);
    rows = rows.flatMap((r) => values.map((v) => ({ ...r, [`matrix.${key}`]: String(v) })));
  }
  return rows;
}

function exampleUses(): ExampleUse[] {
  const out: ExampleUse[] = [];
  const visit = (
    file: string,
    w: Workflow,
    jobWorkflowRef: (ref: string) => string,
    runs: { event: string; ref: string }[],
    inputs: Record<string, string>,
  ) => {
    for (const job of jobsOf(w)) {
      const steps = (job.steps ?? []).filter((st) => usesThisAction(st.uses));
      for (const step of steps)
        for (const run of runs)
          for (const matrix of matrixValues(job)) {
            const vars = { ...inputs, ...matrix };
            const env = job.environment as string | { name: string } | undefined;
            const environment =
              env === undefined ? undefined : resolve(typeof env === 'string' ? env : env.name, vars);
            const w = step.with ?? {};
            const request: ExchangeRequest = {
              namespace: resolve(w.namespace, vars),
              role: resolve(w.role, vars),
              ...(w.ttl === undefined ? {} : { ttlSeconds: Number(w.ttl) }),
            };
            const claims = {
              ...defaultClaims({
                ...EXAMPLE_REPO,
                event_name: run.event,
                ref: run.ref,
                ref_type: run.ref.startsWith('refs/tags/') ? 'tag' : 'branch',
                workflow_ref: jobWorkflowRef(run.ref),
                job_workflow_ref: jobWorkflowRef(run.ref),
                ...(environment ? { environment } : {}),
              }),
              iss: 'https://token.actions.githubusercontent.com',
              aud: 'k8s-ephemeral-access',
              jti: 'example',
              iat: 0,
              exp: 0,
            } as unknown as VerifiedClaims;
            out.push({
              file,
              label: `${file} (${run.event} ${run.ref}${Object.keys(matrix).length ? `, ${Object.values(matrix).join(', ')}` : ''}): ${request.role} in ${request.namespace}`,
              claims,
              request,
            });
          }
    }
  };
  for (const [file, w] of examples) {
    const on = (w.on ?? {}) as Record<string, unknown>;
    if ('workflow_call' in on) continue;
    visit(file, w, (ref) => `octo-org/web/.github/workflows/${file}@${ref}`, triggers(on), {});
    // A call of the reusable workflow: its job runs with the caller's trigger and the inputs passed.
    for (const caller of jobsOf(w).filter((j) => j.uses)) {
      const m = /^octo-org\/deploy-workflows\/\.github\/workflows\/deploy\.yml@(v[\d.]*)$/.exec(caller.uses!);
      if (!m) throw new Error(`${file} calls ${caller.uses}, which examples.test.ts does not know`);
      const reusable = [...examples].find(
        ([, r]) => typeof r.on === 'object' && r.on !== null && 'workflow_call' in r.on,
      )!;
      const inputs = Object.fromEntries(
        Object.entries(caller.with ?? {}).map(([k, v]) => [
          `inputs.${k}`,
          resolve(v, { 'github.ref_name': 'v1.2.0' }),
        ]),
      );
      visit(
        `${file} -> ${reusable[0]}`,
        reusable[1],
        () => `octo-org/deploy-workflows/.github/workflows/deploy.yml@refs/tags/${m[1]}`,
        triggers(on),
        inputs,
      );
    }
  }
  return out;
}

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
