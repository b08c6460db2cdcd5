// `policy test <file> --claims <json> --namespace N --role R [--ttl S]`: would the broker grant this
// job this request? The verdict comes from the code the broker runs (the claim shape checks, the
// request checks, the policy engine); explain.ts adds, per rule, what stood in the way.
import { isIP } from 'node:net';
import type { ExchangeRequest } from '../../shared/api.js';
import { BrokerError, errorMessage } from '../../shared/errors.js';
import { checkGitHubClaims } from '../auth/github-claims.js';
import { parseExchangeRequest } from '../http/validate.js';
import { explainRules, type RuleExplanation } from '../policy/explain.js';
import type { Policy } from '../policy/types.js';
import type { Grantable, VerifiedClaims } from '../types.js';
import { UsageError, requiredOption, type Command } from './command.js';
import type { CliIo } from './cli-io.js';
import { EXIT } from './exit-codes.js';
import { ISSUER_OPTION, issueLines, loadPolicyArg } from './policy-file.js';

/**
 * Claims of one token, not of the job: a claims file may leave them out. The broker checks them
 * (signature, expiry, single use) before the policy, and the policy never reads them.
 */
const TOKEN_CLAIMS = { jti: 'policy-test', iat: 0, exp: 0, run_id: '1', run_attempt: '1' };

export interface PolicyTestResult {
  allowed: boolean;
  /** The rule that allows it, and where it is. */
  rule?: string;
  source?: string;
  ttlSeconds?: number;
  roleRef?: { kind: string; name: string };
  /** Why not: the reason code the broker's audit line would carry, and its message. */
  reason?: string;
  message?: string;
  rules: RuleExplanation[];
}

const refusal = (err: unknown, rules: RuleExplanation[]): PolicyTestResult => {
  if (!(err instanceof BrokerError)) throw err;
  return { allowed: false, reason: err.reason, message: err.message, rules };
};

/** Decides one request against the policy as the broker's exchange route does, minus the cluster. */
export function testPolicy(
  policy: Policy,
  claims: Record<string, unknown>,
  request: Record<string, unknown>,
  clientAddress?: string,
): PolicyTestResult {
  let parsed: ExchangeRequest;
  let verified: VerifiedClaims;
  try {
    parsed = parseExchangeRequest(request);
    verified = checkGitHubClaims({ ...TOKEN_CLAIMS, ...claims });
  } catch (err) {
    return refusal(err, []);
  }
  const rules = explainRules(policy.rules, verified, parsed, {
    admits: (rule) => policy.sourceAllowed(rule, clientAddress),
    clientAddress,
  });
  let grant: Grantable;
  try {
    grant = policy.authorize(verified, parsed, clientAddress);
  } catch (err) {
    return refusal(err, rules);
  }
  const { kind, name } = grant.roleRef;
  return {
    allowed: true,
    rule: grant.ruleName,
    source: policy.rules.find((r) => r.name === grant.ruleName)?.source,
    ttlSeconds: grant.ttlSeconds,
    roleRef: { kind, name },
    rules,
  };
}

async function readClaims(source: string, io: CliIo): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = source === '-' ? await io.readStdin() : io.readFile(source);
  } catch (err) {
    throw new UsageError(
      `--claims: cannot read ${source} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--claims: ${source} is not JSON (${errorMessage(err)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(`--claims: ${source} must hold one JSON object of token claims`);
  return value as Record<string, unknown>;
}

function ttlOf(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(raw))
    throw new UsageError(`policy test: --ttl must be a number of seconds, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function clientIpOf(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (isIP(raw) === 0)
    throw new UsageError(
      `policy test: --client-ip must be an IPv4 or IPv6 address, got ${JSON.stringify(raw)}`,
    );
  return raw;
}

function report(io: CliIo, request: Record<string, unknown>, result: PolicyTestResult): void {
  const what = `namespace ${String(request.namespace)}, role ${String(request.role)}`;
  if (result.allowed) {
    io.out(
      `allowed by rule ${result.rule} (${result.source}): ${what}, ttl ${result.ttlSeconds} s, ` +
        `${result.roleRef?.kind} ${result.roleRef?.name}\n`,
    );
    return;
  }
  io.out(`refused (${result.reason}): ${what}: ${result.message}\n`);
  for (const r of result.rules) io.out(`  rule ${r.rule} (${r.source}): ${r.problems.join('; ')}\n`);
}

export const policyTest: Command = {
  name: 'policy test',
  summary: 'say which rule allows a request for these claims, or why each rule does not',
  help: `usage: policy test <policy.yaml> --claims <file.json | -> --namespace N --role R [--ttl S]
                   [--client-ip A] [--issuer URL]... [--broker-namespace N] [--json]

Decides one exchange request the way the broker does: the claims' shape, the request's shape,
then the rules in file order. Prints the rule that allows it, or the refusal reason and, for
every rule, what stands in the way. Named roles are not read from a cluster here (policy check
--kubeconfig does that); the broker also refuses a missing or dangerous one.

  --claims FILE   the token's claims as JSON (- reads stdin), e.g. a decoded GitHub OIDC token;
                  jti, iat, exp, run_id and run_attempt may be left out
  --namespace N   the namespace the job asks for
  --role R        the role the job asks for (the action's role input)
  --ttl S         the lifetime asked for, in seconds (default: the rule's maxTtlSeconds)
  --client-ip A   the address the broker would see the runner at (after trustedProxies), for rules
                  with sourceRanges; without it such rules do not match, as for an unknown address
  --issuer URL    an issuer the broker trusts (repeat for several), as for policy check
  --broker-namespace N  the broker's namespace, as for policy check
  --json          one JSON object on stdout: {"allowed", "rule", "source", "ttlSeconds",
                  "roleRef", "reason", "message", "rules": [{"rule", "source", "problems"}]};
                  for an invalid policy {"allowed": false, "valid": false, "problems"}

exit codes: 0 allowed, 1 refused (or the policy is invalid), 2 usage error
`,
  options: {
    ...ISSUER_OPTION,
    claims: { type: 'string' },
    namespace: { type: 'string' },
    role: { type: 'string' },
    ttl: { type: 'string' },
    'client-ip': { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1 },
  async run(args, io) {
    const claimsSource = requiredOption(args, this, 'claims');
    const request: Record<string, unknown> = {
      namespace: requiredOption(args, this, 'namespace'),
      role: requiredOption(args, this, 'role'),
    };
    const ttl = ttlOf(args.values.ttl as string | undefined);
    const clientIp = clientIpOf(args.values['client-ip'] as string | undefined);
    if (ttl !== undefined) request.ttlSeconds = ttl;
    const claims = await readClaims(claimsSource, io);
    const loaded = loadPolicyArg(args.positionals[0]!, args);
    if ('issues' in loaded) {
      if (args.values.json === true)
        io.out(`${JSON.stringify({ allowed: false, valid: false, problems: loaded.issues })}\n`);
      else io.err(issueLines(loaded.issues));
      return EXIT.no;
    }
    const result = testPolicy(loaded.policy, claims, request, clientIp);
    if (args.values.json === true) io.out(`${JSON.stringify(result)}\n`);
    else report(io, request, result);
    return result.allowed ? EXIT.ok : EXIT.no;
  },
};
