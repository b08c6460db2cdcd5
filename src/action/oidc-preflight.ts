// Fails before any network call when GitHub will not (or must not) give this job an OIDC token,
// with a message that says exactly what to change. Without this, the toolkit's getIDToken fails
// with "Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable", which users misread
// (configure-aws-credentials#512). The event comes from @actions/github's run context; the build
// keeps only that context (scripts/build.mjs drops Octokit), so it costs the bundle ~1 KB.
import type { context } from '@actions/github';
import type { Env } from './inputs.js';

/** What the preflight reads of the run: the event's name and payload. */
export type RunContext = Pick<typeof context, 'eventName' | 'payload'>;

export class PreflightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreflightError';
  }
}

interface PullRequestPayload {
  pull_request?: {
    head?: { repo?: { fork?: boolean; full_name?: string } | null };
    base?: { repo?: { full_name?: string } };
  };
}

/** The head repository of a pull request from a fork, or undefined for anything else. */
export function forkHeadRepository(payload: unknown): string | undefined {
  const pr = (payload as PullRequestPayload | null)?.pull_request;
  if (!pr || typeof pr !== 'object') return undefined;
  const head = pr.head?.repo;
  const base = pr.base?.repo?.full_name;
  // A deleted head repository (null) is treated as a fork: it is certainly not this repository.
  if (head === null) return '(deleted repository)';
  if (!head) return undefined;
  if (head.fork === true) return head.full_name ?? '(unknown fork)';
  if (head.full_name && base && head.full_name.toLowerCase() !== base.toLowerCase()) return head.full_name;
  return undefined;
}

export function checkOidcAvailable(env: Env, run: RunContext): void {
  const fork = forkHeadRepository(run.payload);
  // Also under pull_request_target, where GitHub would issue a token: giving a fork's code
  // cluster access is exactly the "pwn request" this action must not enable.
  if (fork)
    throw new PreflightError(
      `This job runs for a pull request from the fork ${fork} (event "${run.eventName || 'unknown'}"). ` +
        'Code from forks must not get cluster access, and GitHub gives fork pull requests no OIDC token. ' +
        'Skip this step for forks: add `if: github.event.pull_request.head.repo.full_name == github.repository` to it.',
    );
  if (!env.ACTIONS_ID_TOKEN_REQUEST_URL || !env.ACTIONS_ID_TOKEN_REQUEST_TOKEN)
    throw new PreflightError(
      'GitHub did not give this job an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is not set). ' +
        'Add `permissions: id-token: write` (and `contents: read`) to the workflow or to this job. ' +
        'Dependabot runs and pull requests from forks never get one.',
    );
}
