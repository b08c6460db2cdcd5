// `rbac generate <policy>`: the broker's policy-dependent RBAC as YAML on stdout.
import { brokerRbacFor } from '../rbac/broker-rbac.js';
import { renderBrokerRbac } from '../rbac/render-yaml.js';
import type { Command } from './command.js';
import { EXIT } from './exit-codes.js';
import { ISSUER_OPTION, issueLines, loadPolicyArg } from './policy-file.js';
import { IDENTITY_HELP, IDENTITY_OPTIONS, identityOf } from './rbac-options.js';

export const rbacGenerate: Command = {
  name: 'rbac generate',
  summary: "print the broker's RBAC for a policy (per job namespace, and the role reader) as YAML",
  help: `usage: rbac generate <policy.yaml> [--broker-namespace N] [--service-account S] [--name P]

Prints, for exactly the namespaces and named roles of the policy, what the broker needs: in each
namespace a Role and RoleBinding (grant objects, tokens, bind on the named roles granted there,
the permissions of inline roles granted there), and a ClusterRole + ClusterRoleBinding to read
and watch the named ClusterRoles. Apply it with kubectl apply -f -; deploy/job-namespace-rbac.yaml
is its output for deploy/examples/policy.yaml. The policy is validated first.

${IDENTITY_HELP}

exit codes: 0 printed, 1 the policy is invalid, 2 usage error
`,
  options: { ...ISSUER_OPTION, ...IDENTITY_OPTIONS },
  positionals: { min: 1, max: 1 },
  async run(args, io) {
    const id = identityOf(args);
    const file = args.positionals[0]!;
    const loaded = loadPolicyArg(file, args);
    if ('issues' in loaded) {
      io.err(issueLines(loaded.issues));
      return EXIT.no;
    }
    io.out(renderBrokerRbac(brokerRbacFor(loaded.policy, id), file, id));
    return EXIT.ok;
  },
};
