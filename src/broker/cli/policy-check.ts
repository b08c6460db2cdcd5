// `policy check <file>`: everything the broker checks when it loads the policy, and with
// --kubeconfig also what it checks next, before listening: every named role exists and is safe.
import { createK8sClients, loadKubeConfig } from '../kube/clients.js';
import { describeRole, readNamedRoles } from '../grants/role-vetting.js';
import type { Policy } from '../policy/types.js';
import type { Command } from './command.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';
import { DEFAULT_BROKER_NAMESPACE } from '../policy/job-namespaces.js';
import { ISSUER_OPTION, issueLines, loadPolicyArg } from './policy-file.js';

interface RoleFinding {
  role: string;
  state: string;
  problems: string[];
}

function summary(policy: Policy): string {
  const roles = Object.entries(policy.roles).map(([name, def]) =>
    def.kind === 'Inline' ? `${name} (inline)` : `${name} (${def.kind} ${def.name})`,
  );
  return (
    `${policy.rules.length} rule(s); namespaces: ${policy.namespaces().join(', ') || 'none'}; ` +
    `roles: ${roles.join(', ') || 'none'}`
  );
}

export const policyCheck: Command = {
  name: 'policy check',
  summary: 'validate a policy file as the broker would (and its named roles, with --kubeconfig)',
  help: `usage: policy check <policy.yaml> [--issuer URL]... [--broker-namespace N] [--kubeconfig FILE] [--json]

Loads the policy exactly as the broker does at start and on every reload, and prints every
problem as file:line: field: message. With --kubeconfig it also reads every named ClusterRole
and Role the policy grants from that cluster and refuses missing, aggregated or dangerous ones,
as the broker does before it listens.

  --issuer URL       an issuer the broker trusts (repeat for several): pinned iss values must be
                     among them, and with several every rule must pin iss
  --broker-namespace N  the broker's namespace (default ${DEFAULT_BROKER_NAMESPACE}), which no rule may
                     grant; kube-system, kube-public, kube-node-lease and default are refused too
  --kubeconfig FILE  vet the named roles against this cluster (needs get on them)
  --json             one JSON object on stdout: {"valid", "problems", "summary", "roles"}

exit codes: 0 valid, 1 invalid, 2 usage error, 3 the cluster could not be read
`,
  options: { ...ISSUER_OPTION, kubeconfig: { type: 'string' }, json: { type: 'boolean' } },
  positionals: { min: 1, max: 1 },
  async run(args, io) {
    const file = args.positionals[0]!;
    const json = args.values.json === true;
    const loaded = loadPolicyArg(file, args);
    if ('issues' in loaded) {
      if (json) io.out(`${JSON.stringify({ valid: false, problems: loaded.issues })}\n`);
      else io.err(issueLines(loaded.issues));
      return EXIT.no;
    }
    const kubeconfig = args.values.kubeconfig as string | undefined;
    const roles = kubeconfig ? await vetRoles(loaded.policy, kubeconfig) : undefined;
    const refused = roles?.filter((r) => r.state !== 'safe') ?? [];
    // A missing or dangerous role is a definite no; a role that could not be read is no answer.
    const definite = refused.some((r) => r.state !== 'unverified');
    const valid = refused.length === 0;
    if (json) io.out(`${JSON.stringify({ valid, problems: [], summary: summary(loaded.policy), roles })}\n`);
    else report(io, file, loaded.policy, refused, roles !== undefined);
    if (valid) return EXIT.ok;
    return definite ? EXIT.no : EXIT.unavailable;
  },
};

async function vetRoles(policy: Policy, kubeconfig: string): Promise<RoleFinding[]> {
  const k8s = createK8sClients(loadKubeConfig(kubeconfig));
  const readings = await readNamedRoles(k8s, policy.namedRoles());
  return readings.map(({ role, verdict }) => ({
    role: describeRole(role),
    state: verdict.state,
    problems: 'problems' in verdict ? verdict.problems : [],
  }));
}

function report(io: CliIo, file: string, policy: Policy, refused: RoleFinding[], vetted: boolean): void {
  for (const r of refused) for (const p of r.problems) io.err(`${file}: ${r.role}: ${p}\n`);
  if (refused.length > 0) return;
  io.out(`${file}: valid${vetted ? ', named roles vetted' : ''}: ${summary(policy)}\n`);
}
