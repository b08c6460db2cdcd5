// The post step's job summary: what the job did with its access (granted vs used), from the
// broker's revocation answer (the gateway's count, or in direct mode the API server's audit log).
// Names and rules come from the broker and the job's own calls, so every value is escaped; there is
// never a token or a body in it.
import type { GrantUsage, UsageGap, UsageUnavailable, UsedCall } from '../shared/api.js';
import { escape, list } from './summary.js';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function callLine(u: UsedCall): string {
  const resource = `${u.resource}${u.subresource ? `/${u.subresource}` : ''}` || '(non-resource URL)';
  const group = u.apiGroup ? ` (${escape(u.apiGroup)})` : '';
  const names = u.names.length > 0 ? ` ${u.names.map((n) => `\`${escape(n)}\``).join(', ')}` : '';
  return `\`${escape(u.verb)}\` ${escape(resource)}${group}${names}: ${plural(u.calls, 'call')}`;
}

const callList = (calls: readonly UsedCall[]): string[] => calls.map((u) => `- ${callLine(u)}`);

const TITLE = '## Kubernetes access used';

const GAPS: Record<UsageGap, string> = {
  'log-starts-after-grant':
    "The API server's audit log file begins after the grant did (rotated): earlier calls are missing.",
  'read-limit':
    "The broker's bound on reading the audit log stopped before the grant's start: earlier calls are missing.",
};

const UNAVAILABLE: Record<UsageUnavailable, string> = {
  'no-audit-log':
    "Unavailable: in direct mode the calls are read from the API server's audit log, and this broker is given none (`auditLog` in its config).",
  'audit-log-unreadable':
    "Unavailable: the broker could not read the API server's audit log (its log says why).",
};

export const renderUsageUnavailable = (why: UsageUnavailable): string =>
  [TITLE, '', UNAVAILABLE[why], ''].join('\n');

function countLine(usage: GrantUsage): string {
  const calls = plural(usage.calls, 'call');
  return usage.source === 'audit-log'
    ? `${calls} in the API server's audit log, from the grant's start to its revocation.`
    : `${calls} through the gateway (the broker replica that revoked the grant counted them).`;
}

export function renderUsageSummary(usage: GrantUsage): string {
  const lines = [TITLE, '', countLine(usage), ''];
  // A gap a newer broker names and this action does not know is left out, never printed raw.
  const gap = usage.incomplete && (GAPS as Record<string, string | undefined>)[usage.incomplete];
  if (gap) lines.push(gap, '');
  if (usage.rules) {
    lines.push('| API groups | Resources | Verbs | Names | Used |', '|---|---|---|---|---|');
    for (const r of usage.rules) {
      const names = list(r.rule.resourceNames) === '—' ? 'any' : list(r.rule.resourceNames);
      const used = r.calls > 0 ? r.used.map(callLine).join('<br>') : '**never used**';
      lines.push(
        `| ${list(r.rule.apiGroups)} | ${list(r.rule.resources)} | ${list(r.rule.verbs)} | ${names} | ${used} |`,
      );
    }
    const unused = usage.rules.filter((r) => r.calls === 0).length;
    lines.push('', `${plural(unused, 'rule')} of ${usage.rules.length} never used.`, '');
  } else lines.push("The role's rules could not be read: the calls are listed without them.", '');
  if (usage.refused.length > 0)
    lines.push('### Refused (403): tried and not allowed', '', ...callList(usage.refused), '');
  if (usage.unmatched.length > 0)
    lines.push(
      '### Allowed by no rule of the role (another binding, or a non-resource URL)',
      '',
      ...callList(usage.unmatched),
      '',
    );
  if (usage.shadow) {
    lines.push(
      `### Shadow role \`${escape(usage.shadow.role)}\`: ${plural(usage.shadow.wouldDenyCalls, 'call')} it would deny`,
      '',
      ...callList(usage.shadow.wouldDeny),
      '',
    );
  }
  if (usage.truncated)
    lines.push('More kinds of calls than the broker keeps per grant: the lists are incomplete.', '');
  return lines.join('\n');
}
