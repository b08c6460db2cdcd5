// The policy file a command names, loaded exactly as the broker loads it (load-policy.ts), and its
// problems in the form commands print: `file:line: field: message` lines, or objects for --json.
import { ConfigError, formatIssue, type ConfigIssue } from '../yaml-fields/config-error.js';
import { loadPolicy } from '../policy/index.js';
import type { Policy } from '../policy/types.js';
import type { ParsedArgs } from './command.js';

/**
 * `--issuer`: the broker's trusted issuers, so that pinned `iss` values are checked as the broker
 * would; `--broker-namespace`: the broker's namespace, which no rule may name as a job namespace.
 */
export const ISSUER_OPTION = {
  issuer: { type: 'string', multiple: true },
  'broker-namespace': { type: 'string' },
} as const;

export type PolicyLoad = { policy: Policy } | { issues: readonly ConfigIssue[] };

export function loadPolicyArg(path: string, args: ParsedArgs): PolicyLoad {
  const issuers = args.values.issuer as string[] | undefined;
  const brokerNamespace = args.values['broker-namespace'] as string | undefined;
  try {
    return {
      policy: loadPolicy(path, { ...(issuers && { issuers }), ...(brokerNamespace && { brokerNamespace }) }),
    };
  } catch (err) {
    if (err instanceof ConfigError) return { issues: err.issues };
    throw err;
  }
}

export const issueLines = (issues: readonly ConfigIssue[]): string =>
  issues.map((i) => `${formatIssue(i)}\n`).join('');
