// The demo's command line: what `npm run demo -- --help` prints and what it accepts.
import { parseArgs } from 'node:util';
import { errorText } from './transcript.js';

export const USAGE = `Usage: npm run demo [-- options]

Runs the whole k8s-ephemeral-access flow locally and prints a transcript: a real control plane,
a local OIDC issuer standing in for GitHub, the broker under its deploy/ RBAC with the example
policy, the action's main step, kubectl (one allowed and one denied call), the post step, the
revoked token being rejected, and the audit lines that join the GitHub run to the API server's
audit log.

Options:
  --keep               keep the local control plane running afterwards (stop it with
                       \`npm run cluster:down\`)
  --kubeconfig <file>  use the existing cluster this admin kubeconfig points at instead of the
                       local control plane (the demo creates and deletes two namespaces, and the
                       example ClusterRoles k8s-ea-deployer/k8s-ea-viewer if they are missing)
  -h, --help           show this help

By default a control plane the demo started is stopped at the end; one that was already running
is left running. Ctrl-C cleans up (revokes the grant, deletes the demo namespaces) and exits 130.
`;

export interface DemoOptions {
  keep: boolean;
  kubeconfig?: string;
  help: boolean;
}

export class UsageError extends Error {}

/** Parses the demo's command line; throws UsageError with the reason for anything unknown. */
export function parseDemoArgs(argv: string[]): DemoOptions {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        keep: { type: 'boolean', default: false },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.kubeconfig !== undefined && values.kubeconfig.trim() === '')
      throw new UsageError('--kubeconfig needs the path of an admin kubeconfig');
    if (values.kubeconfig !== undefined && values.keep)
      throw new UsageError('--keep is about the local control plane; it cannot be used with --kubeconfig');
    return { keep: values.keep, kubeconfig: values.kubeconfig, help: values.help };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(errorText(err));
  }
}
