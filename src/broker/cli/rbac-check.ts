// `rbac check <policy> --kubeconfig K`: does the cluster's RBAC for the broker match the policy?
import { createK8sClients, loadKubeConfig } from '../kube/clients.js';
import { describeK8sError } from '../kube/errors.js';
import { brokerRbacFor } from '../rbac/broker-rbac.js';
import { findRbacDrift, type Drift } from '../rbac/drift.js';
import { requiredOption, type Command } from './command.js';
import { EXIT } from './exit-codes.js';
import { ISSUER_OPTION, issueLines, loadPolicyArg } from './policy-file.js';
import { IDENTITY_HELP, IDENTITY_OPTIONS, identityOf } from './rbac-options.js';

const line = (d: Drift) => `${d.kind.padEnd(7)} ${d.object}${d.detail ? `: ${d.detail}` : ''}\n`;

export const rbacCheck: Command = {
  name: 'rbac check',
  summary: "compare the cluster's RBAC for the broker with what the policy needs",
  help: `usage: rbac check <policy.yaml> --kubeconfig FILE [--broker-namespace N] [--service-account S]
                  [--name P] [--json]

Reads the objects rbac generate would print from the cluster and lists every permission,
binding subject or object that is missing (grants would fail) or extra (the broker holds more
than the policy needs), and RoleBindings that give the broker a namespace the policy does not
name. Needs a kubeconfig that may read Roles, RoleBindings and ClusterRoles(Bindings).

  --kubeconfig FILE     the cluster to check
${IDENTITY_HELP}
  --json                one JSON object on stdout: {"matches", "drift": [{"kind", "object", "detail"}]}

exit codes: 0 matches, 1 drift (or the policy is invalid), 2 usage error, 3 the cluster could not be read
`,
  options: {
    ...ISSUER_OPTION,
    ...IDENTITY_OPTIONS,
    kubeconfig: { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1 },
  async run(args, io) {
    const kubeconfig = requiredOption(args, this, 'kubeconfig');
    const id = identityOf(args);
    const loaded = loadPolicyArg(args.positionals[0]!, args);
    if ('issues' in loaded) {
      io.err(issueLines(loaded.issues));
      return EXIT.no;
    }
    let drift: Drift[];
    try {
      drift = await findRbacDrift(
        createK8sClients(loadKubeConfig(kubeconfig)),
        brokerRbacFor(loaded.policy, id),
        id,
      );
    } catch (err) {
      io.err(`rbac check: cannot read the cluster's RBAC (${describeK8sError(err)})\n`);
      return EXIT.unavailable;
    }
    if (args.values.json === true) io.out(`${JSON.stringify({ matches: drift.length === 0, drift })}\n`);
    else if (drift.length === 0) io.out('the RBAC matches the policy\n');
    else io.out(drift.map(line).join(''));
    return drift.length === 0 ? EXIT.ok : EXIT.no;
  },
};
