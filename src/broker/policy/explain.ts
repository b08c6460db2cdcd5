// Why each rule of a policy does or does not allow one exchange request: what `policy test` prints.
// The verdict itself is the engine's (engine.ts authorize, the code the broker runs); this only
// says, rule by rule, which field, namespace, role or TTL stood in the way.
import type { ExchangeRequest } from '../../shared/api.js';
import type { VerifiedClaims } from '../types.js';
import { fieldMatches } from './matcher.js';
import { MATCH_FIELDS, type PolicyRule, type ValueMatcher } from './types.js';

export interface RuleExplanation {
  rule: string;
  /** `file:line` of the rule. */
  source: string;
  /** Empty exactly when the rule allows the request. */
  problems: string[];
}

const describeMatcher = (m: ValueMatcher): string =>
  'exact' in m ? JSON.stringify(m.exact) : `{ glob: ${JSON.stringify(m.glob)} }`;

function matchProblems(rule: PolicyRule, claims: VerifiedClaims): string[] {
  const problems: string[] = [];
  for (const field of MATCH_FIELDS) {
    const accepted = rule.match[field];
    if (accepted === undefined || fieldMatches(field, accepted, claims)) continue;
    const value: unknown = claims[field];
    const wanted = accepted.map(describeMatcher).join(', ');
    problems.push(
      typeof value === 'string'
        ? `match.${field}: ${JSON.stringify(value)} is not ${accepted.length > 1 ? 'one of ' : ''}${wanted}`
        : `match.${field}: the claims have no ${field} (the rule wants ${wanted})`,
    );
  }
  return problems;
}

/**
 * One explanation per rule, in file order. `admitsSource` says whether a rule's sourceRanges admit the
 * client address (the engine's own check, Policy.sourceAllowed); `clientAddress` is only for the message.
 */
export function explainRules(
  rules: readonly PolicyRule[],
  claims: VerifiedClaims,
  request: ExchangeRequest,
  source: { admits: (rule: string) => boolean; clientAddress: string | undefined } = {
    admits: () => true,
    clientAddress: undefined,
  },
): RuleExplanation[] {
  return rules.map((rule) => {
    const problems = matchProblems(rule, claims);
    if (!rule.namespaces.includes(request.namespace))
      problems.push(
        `namespace ${JSON.stringify(request.namespace)} is not in namespaces [${rule.namespaces.join(', ')}]`,
      );
    if (!rule.roles.includes(request.role))
      problems.push(`role ${JSON.stringify(request.role)} is not in roles [${rule.roles.join(', ')}]`);
    if (request.ttlSeconds !== undefined && request.ttlSeconds > rule.maxTtlSeconds)
      problems.push(`ttl ${request.ttlSeconds} s exceeds maxTtlSeconds ${rule.maxTtlSeconds}`);
    if (rule.sourceRanges && !source.admits(rule.name))
      problems.push(
        source.clientAddress === undefined
          ? `sourceRanges [${rule.sourceRanges.join(', ')}]: no client address given (--client-ip)`
          : `client address ${source.clientAddress} is not in sourceRanges [${rule.sourceRanges.join(', ')}]`,
      );
    return { rule: rule.name, source: rule.source, problems };
  });
}
