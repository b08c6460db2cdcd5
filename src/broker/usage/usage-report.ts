// Granted vs used for one grant: its role's rules, each with the calls it allowed (by the same RBAC
// semantics as the API server, rbac/evaluate.ts), the allowed calls no rule of the role explains,
// the refused calls (403), and what its shadow role would have denied.
import type { GrantUsage, RuleSummary, UsedCall } from '../../shared/api.js';
import { allowingRuleIndex } from '../rbac/evaluate.js';
import { rbacRequestOf } from './api-call.js';
import type { CallKind, GrantCalls } from './usage-recorder.js';

/** How many names a line of the report lists. */
export const MAX_NAMES = 20;

function merge(kinds: readonly CallKind[]): UsedCall[] {
  const out = new Map<string, UsedCall>();
  for (const k of kinds) {
    const key = JSON.stringify([k.verb, k.apiGroup, k.resource, k.subresource, k.namespace]);
    let u = out.get(key);
    if (!u) {
      u = {
        verb: k.verb,
        apiGroup: k.apiGroup,
        // A non-resource URL has no resource: the report names it by its verb alone.
        resource: k.resource ?? '',
        ...(k.subresource ? { subresource: k.subresource } : {}),
        ...(k.namespace ? { namespace: k.namespace } : {}),
        names: [],
        calls: 0,
      };
      out.set(key, u);
    }
    u.calls += k.calls;
    if (k.name && !u.names.includes(k.name) && u.names.length < MAX_NAMES) u.names.push(k.name);
  }
  return [...out.values()].map((u) => ({ ...u, names: u.names.sort() }));
}

export function usageReport(
  recorded: GrantCalls,
  grantNamespace: string,
  rules: readonly RuleSummary[] | undefined,
): GrantUsage {
  const allowed = recorded.kinds.filter((k) => k.outcome === 'allowed');
  const byRule = new Map<number, CallKind[]>();
  const unmatched: CallKind[] = [];
  for (const k of allowed) {
    const index =
      rules && k.resource !== undefined
        ? allowingRuleIndex({ namespace: grantNamespace, rules }, rbacRequestOf({ ...k, status: 200 }))
        : -1;
    if (index < 0) unmatched.push(k);
    else byRule.set(index, [...(byRule.get(index) ?? []), k]);
  }
  const wouldDeny = allowed.filter((k) => k.wouldDeny);
  return {
    calls: recorded.calls,
    ...(rules
      ? {
          rules: rules.map((rule, i) => {
            const used = merge(byRule.get(i) ?? []);
            return { rule, calls: used.reduce((n, u) => n + u.calls, 0), used };
          }),
        }
      : {}),
    unmatched: merge(unmatched),
    refused: merge(recorded.kinds.filter((k) => k.outcome === 'refused')),
    ...(recorded.shadow
      ? {
          shadow: {
            role: recorded.shadow.role,
            wouldDeny: merge(wouldDeny),
            wouldDenyCalls: recorded.shadow.wouldDenyCalls,
          },
        }
      : {}),
    ...(recorded.truncated ? { truncated: true } : {}),
  };
}
