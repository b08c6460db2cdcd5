// The slice of @actions/core the action uses, as an interface: the run functions take it as a
// dependency, so tests pass a recording fake and @github/local-action can pass its own stub.
import {
  debug,
  exportVariable,
  getInput,
  getState,
  info,
  saveState,
  setFailed,
  setOutput,
  setSecret,
  summary,
  warning,
} from '@actions/core';

export interface ActionCore {
  getInput(name: string): string;
  getState(name: string): string;
  info(message: string): void;
  warning(message: string): void;
  debug(message: string): void;
  setFailed(message: string): void;
  /** Must be called for every credential before anything could print it. */
  setSecret(secret: string): void;
  setOutput(name: string, value: string): void;
  exportVariable(name: string, value: string): void;
  saveState(name: string, value: string): void;
}

/**
 * The real runner's implementation. Named imports, not the module namespace: the bundler can then
 * leave out what the action does not use (getIDToken and its HTTP client; see id-token.ts).
 */
export const runnerCore: ActionCore = {
  getInput,
  getState,
  info,
  warning,
  debug,
  setFailed,
  setSecret,
  setOutput,
  exportVariable,
  saveState,
};

/** Appends Markdown to the job summary (GITHUB_STEP_SUMMARY). */
export async function appendSummary(markdown: string): Promise<void> {
  await summary.addRaw(markdown).write();
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** In [0, 1), for retry jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: () => Math.random(),
};
