// The job summary: what access this run got and until when, for reviewers reading the run page.
// Metadata only (the token never reaches this function), and every value is escaped because the
// rules come from the broker and end up rendered as HTML/Markdown.
import type { ExchangeResponse } from '../shared/api.js';

export const escape = (s: string): string =>
  s.replace(/[&<>"'|`\\*_[\]]/g, (c) => `&#${c.charCodeAt(0)};`).replace(/[\r\n]+/g, ' ');

export const list = (values: unknown): string =>
  Array.isArray(values) && values.length > 0
    ? values.map((v) => (v === '' ? '(core)' : escape(String(v)))).join(', ')
    : '—';

export type GrantSummary = Omit<ExchangeResponse, 'token' | 'certificateAuthorityData'>;

export function renderSummary(grant: GrantSummary, contextName: string): string {
  const lines = [
    '## Kubernetes access granted',
    '',
    '| | |',
    '|---|---|',
    `| Namespace | \`${escape(grant.namespace)}\` |`,
    `| Role | \`${escape(grant.role)}\` |`,
    `| ServiceAccount | \`${escape(grant.serviceAccount)}\` |`,
    `| Grant id | \`${escape(grant.grantId)}\` |`,
    `| Context | \`${escape(contextName)}\` |`,
    `| Expires at | ${escape(grant.expiresAt)} |`,
    '',
  ];
  if (grant.rules.length > 0) {
    lines.push(
      '### What the role allows',
      '',
      '| API groups | Resources | Verbs | Names |',
      '|---|---|---|---|',
    );
    for (const r of grant.rules)
      lines.push(
        `| ${list(r.apiGroups)} | ${list(r.resources)} | ${list(r.verbs)} | ${list(r.resourceNames) === '—' ? 'any' : list(r.resourceNames)} |`,
      );
  } else {
    lines.push("The broker did not report the role's rules (it binds a role it does not own).");
  }
  lines.push(
    '',
    'The grant is revoked when the job ends, and by the broker at the expiry time at the latest.',
    '',
  );
  return lines.join('\n');
}
