// Runs the action's real bundles (dist/main/index.js, dist/post/index.js) the way the GitHub
// runner does: a fresh node process per step with INPUT_* (defaults from action.yml applied),
// per-step GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STATE / GITHUB_STEP_SUMMARY files, STATE_* for post
// from what main saved, env exported by earlier steps, RUNNER_TEMP, GITHUB_WORKSPACE, the event
// payload, and ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN for core.getIDToken. Outputs, exported env,
// state and the workflow commands on stdout are parsed back for assertions.
//
// Children are spawned asynchronously on purpose: the OIDC issuer and the broker may run inside
// the test process, and a synchronous spawn would block them.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { load } from 'js-yaml';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
const MAIN = join(repoRoot, 'dist', 'main', 'index.js');
const POST = join(repoRoot, 'dist', 'post', 'index.js');

export { ensureActionBuilt } from './ensure-built.js';

/** Parses a file written with GitHub file commands: `name=value` or `name<<DELIM` heredocs. */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i]!;
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const value: string[] = [];
      for (i += 1; i < lines.length && lines[i] !== delimiter; i += 1) value.push(lines[i]!);
      if (i >= lines.length) throw new Error(`unterminated heredoc for ${name} (delimiter ${delimiter})`);
      out[name!] = value.join('\n');
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`not a file command: ${line}`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export interface WorkflowCommand {
  command: string;
  value: string;
}

export interface StepResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Workflow commands printed on stdout (::add-mask::, ::error::, ::warning::, ::debug::...). */
  commands: WorkflowCommand[];
  masks: string[];
  /** stdout lines that are not commands, plus error/warning texts: what a reader would see. */
  log: string;
  errors: string[];
  warnings: string[];
  outputs: Record<string, string>;
  exportedEnv: Record<string, string>;
  savedState: Record<string, string>;
  summary: string;
  /** The raw file-command files of this step, to search for leaked secrets. */
  files: { output: string; env: string; state: string; summary: string };
}

export interface JobOptions {
  /** The runner's ID-token endpoint; omit to simulate a job without `id-token: write`. */
  idToken?: { url: string; token: string };
  eventName?: string;
  eventPayload?: unknown;
  /** Extra environment for every step. */
  env?: Record<string, string>;
  /** The node binary that runs the steps (node-runtimes.ts); default: the test process's. */
  node?: string;
}

export interface RunnerJob {
  root: string;
  runnerTemp: string;
  workspace: string;
  /** Env exported so far by steps of this job (GITHUB_ENV), applied to later steps. */
  exportedEnv: Record<string, string>;
  /** State saved by the main step, passed to post as STATE_*. */
  state: Record<string, string>;
  inputs: Record<string, string>;
  main(inputs: Record<string, string>): Promise<StepResult>;
  /**
   * The post step of one use of the action: by default the last main's. The runner keeps state per
   * use, so a job with two uses passes each main's `savedState` (posts run in reverse order).
   */
  post(state?: Record<string, string>): Promise<StepResult>;
  /** Runs a command as a later `run:` step would (with the exported env). */
  exec(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  cleanup(): void;
}

function actionInputDefaults(): Record<string, string> {
  const doc = load(readFileSync(join(repoRoot, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const out: Record<string, string> = {};
  for (const [name, spec] of Object.entries(doc.inputs))
    if (spec.default !== undefined) out[name] = spec.default;
  return out;
}

/** The runner's INPUT_ naming: upper-case, spaces to underscores, dashes kept. */
export const inputEnvName = (name: string): string => `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;

function parseStdout(stdout: string): Pick<StepResult, 'commands' | 'masks' | 'log' | 'errors' | 'warnings'> {
  const commands: WorkflowCommand[] = [];
  const logLines: string[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^::([a-z-]+)(?: [^:]*)?::(.*)$/.exec(line);
    if (m) {
      commands.push({ command: m[1]!, value: m[2]! });
      if (m[1] === 'error' || m[1] === 'warning' || m[1] === 'notice') logLines.push(m[2]!);
    } else if (line !== '') logLines.push(line);
  }
  const pick = (c: string) => commands.filter((x) => x.command === c).map((x) => x.value);
  return {
    commands,
    masks: pick('add-mask'),
    log: logLines.join('\n'),
    errors: pick('error'),
    warnings: pick('warning'),
  };
}

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end, collecting what it printed, without blocking the event loop (local
 * servers such as the OIDC issuer serve from the calling process meanwhile).
 */
export function runChild(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<ChildResult> {
  return new Promise((resolveChild, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveChild({ code, stdout, stderr }));
  });
}

export function createJob(options: JobOptions = {}): RunnerJob {
  const root = mkdtempSync(join(tmpdir(), 'k8s-ea-runner-'));
  const runnerTemp = join(root, '_temp');
  const workspace = join(root, 'work', 'repo');
  mkdirSync(runnerTemp, { recursive: true });
  mkdirSync(workspace, { recursive: true });
  const eventPath = join(root, '_event.json');
  writeFileSync(eventPath, JSON.stringify(options.eventPayload ?? {}));
  let stepNo = 0;

  const job: RunnerJob = {
    root,
    runnerTemp,
    workspace,
    exportedEnv: {},
    state: {},
    inputs: {},
    async main(inputs) {
      job.inputs = { ...actionInputDefaults(), ...inputs };
      const r = await runStep(MAIN, {});
      job.state = r.savedState;
      return r;
    },
    async post(state = job.state) {
      const stateEnv: Record<string, string> = {};
      for (const [k, v] of Object.entries(state)) stateEnv[`STATE_${k}`] = v;
      return runStep(POST, stateEnv);
    },
    exec(cmd, args) {
      return runChild(cmd, args, { cwd: workspace, env: { ...baseEnv(), ...job.exportedEnv } });
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };

  function baseEnv(): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: join(root, 'home'),
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      RUNNER_TEMP: runnerTemp,
      GITHUB_WORKSPACE: workspace,
      GITHUB_EVENT_PATH: eventPath,
      GITHUB_EVENT_NAME: options.eventName ?? 'push',
      GITHUB_REPOSITORY: 'octo-org/octo-repo',
      ...(options.idToken
        ? {
            ACTIONS_ID_TOKEN_REQUEST_URL: options.idToken.url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN: options.idToken.token,
          }
        : {}),
      ...(options.env ?? {}),
    };
  }

  async function runStep(entry: string, extraEnv: Record<string, string>): Promise<StepResult> {
    stepNo += 1;
    const files = join(root, '_runner_file_commands', `step-${stepNo}`);
    mkdirSync(files, { recursive: true });
    const paths = {
      output: join(files, 'set_output'),
      env: join(files, 'set_env'),
      state: join(files, 'save_state'),
      summary: join(files, 'step_summary'),
    };
    for (const p of Object.values(paths)) writeFileSync(p, '');
    const inputEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(job.inputs)) inputEnv[inputEnvName(k)] = v;

    const env = {
      ...baseEnv(),
      ...job.exportedEnv,
      ...inputEnv,
      ...extraEnv,
      GITHUB_OUTPUT: paths.output,
      GITHUB_ENV: paths.env,
      GITHUB_STATE: paths.state,
      GITHUB_STEP_SUMMARY: paths.summary,
    };
    const { code, stdout, stderr } = await runChild(options.node ?? process.execPath, [entry], {
      cwd: workspace,
      env,
    });
    const raw = {
      output: readFileSync(paths.output, 'utf8'),
      env: readFileSync(paths.env, 'utf8'),
      state: readFileSync(paths.state, 'utf8'),
      summary: readFileSync(paths.summary, 'utf8'),
    };
    const exportedEnv = parseFileCommands(raw.env);
    Object.assign(job.exportedEnv, exportedEnv);
    return {
      exitCode: code,
      stdout,
      stderr,
      ...parseStdout(stdout),
      outputs: parseFileCommands(raw.output),
      exportedEnv,
      savedState: parseFileCommands(raw.state),
      summary: raw.summary,
      files: raw,
    };
  }

  return job;
}
