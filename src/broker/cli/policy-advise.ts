// `policy advise [file...]`: the smallest Role the audited runs needed, per policy rule,
// repository, workflow and role (advise/propose-role.ts), from the broker's audit lines and/or the
// API server's audit log.
import { errorMessage } from '../../shared/errors.js';
import { readAuditInput } from '../advise/audit-input.js';
import { proposeRoles } from '../advise/propose-role.js';
import { policyDiff, renderProposal, roleManifest } from '../advise/render-proposal.js';
import { UsageError, type Command } from './command.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';

async function readInputs(paths: string[], io: CliIo): Promise<string> {
  if (paths.length === 0) return io.readStdin();
  const texts: string[] = [];
  for (const path of paths) {
    try {
      texts.push(path === '-' ? await io.readStdin() : io.readFile(path));
    } catch (err) {
      throw new UsageError(
        `policy advise: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
      );
    }
  }
  return texts.join('\n');
}

export const policyAdvise: Command = {
  name: 'policy advise',
  summary: 'propose the smallest Role that allows what audited runs did',
  help: `usage: policy advise [audit-file...] [--json]

Reads audit lines (files, or stdin when none or "-"): the broker's own JSON lines (its exchange
lines tell each grant's rule, role and run; its gateway lines are the calls through the gateway)
and the API server's audit log (JSON Event lines; calls made straight to the API server by a
grant's ServiceAccount, joined to the broker's exchange lines). A call both logs hold counts once.

For each policy rule, repository ID, workflow (job_workflow_ref) and role it proposes the smallest
Role that allows every call the runs were allowed: the verbs and resources used, resourceNames
where every run touched the same names, and per rule how many calls, runs and branches back it.
It prints the Role manifest and the policy diff that grants it, the refused calls (403) apart,
the used permissions the broker refuses to grant (left out), and allowed calls no Role can grant
(cluster-scoped, non-resource).

  --json   one JSON object: {"proposals": [{"key", "runs", "branches", "namespaces", "rules",
           "refusedByVetting", "refused", "outsideRole", "manifest", "policyDiff"}], "calls", "ignored"}

exit codes: 0 a proposal was made, 1 no call of a grant was found, 2 usage error
`,
  options: { json: { type: 'boolean' } },
  positionals: { min: 0, max: 64 },
  async run(args, io) {
    const input = readAuditInput(await readInputs(args.positionals, io));
    const proposals = proposeRoles(input.calls);
    if (args.values.json === true) {
      const withText = proposals.map((p) => ({ ...p, manifest: roleManifest(p), policyDiff: policyDiff(p) }));
      io.out(
        `${JSON.stringify({ proposals: withText, calls: input.calls.length, ignored: input.ignored })}\n`,
      );
    } else if (proposals.length === 0) {
      io.err(`policy advise: no call of a grant in the input (${input.ignored} lines ignored)\n`);
    } else io.out(proposals.map(renderProposal).join('\n'));
    return proposals.length > 0 ? EXIT.ok : EXIT.no;
  },
};
