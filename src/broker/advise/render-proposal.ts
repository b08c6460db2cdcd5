// A proposal as people read it: the Role manifest (a comment per rule says which runs back it),
// the policy change that grants it in place of the broad role, then the refused calls and what a
// Role cannot grant. `--json` prints the same Proposal objects plus the manifest text.
import { yamlScalar } from '../rbac/render-yaml.js';
import { describeResource } from '../usage/api-call.js';
import type { CallTally, Proposal, ProposedRule } from './propose-role.js';

const flow = (values: readonly string[]) => `[${values.map(yamlScalar).join(', ')}]`;

/** The name the proposed Role takes: the broad role's, marked, within a DNS label. */
export function proposedRoleName(role: string): string {
  return `${role.slice(0, 63 - '-minimal'.length)}-minimal`;
}

const evidenceOf = (r: Pick<ProposedRule, 'calls' | 'runs' | 'branches'>) =>
  `${r.calls} call${r.calls === 1 ? '' : 's'} in ${r.runs} run${r.runs === 1 ? '' : 's'}` +
  (r.branches.length > 0 ? ` on ${r.branches.join(', ')}` : '');

function ruleLines(rule: ProposedRule, indent: string): string[] {
  return [
    `${indent}# ${evidenceOf(rule)}`,
    `${indent}- apiGroups: ${flow(rule.apiGroups)}`,
    `${indent}  resources: ${flow(rule.resources)}`,
    `${indent}  verbs: ${flow(rule.verbs)}`,
    ...(rule.resourceNames ? [`${indent}  resourceNames: ${flow(rule.resourceNames)}`] : []),
  ];
}

/** One Role per namespace the grants were made in (or one without a namespace). */
export function roleManifest(p: Proposal): string {
  const namespaces = p.namespaces.length > 0 ? p.namespaces : [undefined];
  return namespaces
    .map((ns) =>
      [
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: Role',
        'metadata:',
        `  name: ${yamlScalar(proposedRoleName(p.key.role))}`,
        ...(ns ? [`  namespace: ${yamlScalar(ns)}`] : []),
        p.rules.length > 0 ? 'rules:' : 'rules: []',
        ...p.rules.flatMap((r) => ruleLines(r, '  ')),
      ].join('\n'),
    )
    .join('\n---\n');
}

/** The policy change: declare the Role, then grant it (first in shadow, then in place of the old). */
export function policyDiff(p: Proposal): string {
  const name = proposedRoleName(p.key.role);
  return [
    ` roles:`,
    `+  ${name}: { role: ${yamlScalar(name)} }`,
    ` rules:`,
    `   - name: ${yamlScalar(p.key.policyRule)}`,
    `-    roles: [${yamlScalar(p.key.role)}]`,
    `+    roles: [${yamlScalar(name)}]`,
  ].join('\n');
}

function tallyLine(t: CallTally): string {
  const what = t.resource ? describeResource(t) : '(non-resource URL)';
  const where = t.namespace ? ` in ${t.namespace}` : t.resource ? ' (cluster-scoped)' : '';
  const names = t.names.length > 0 ? ` [${t.names.join(', ')}]` : '';
  return `  ${t.verb} ${what}${where}${names}: ${t.calls} call${t.calls === 1 ? '' : 's'} in ${t.runs} run${t.runs === 1 ? '' : 's'}`;
}

export function renderProposal(p: Proposal): string {
  const { key } = p;
  const out = [
    `# rule ${key.policyRule}, repository ${key.repositoryId}, workflow ${key.workflow}, role ${key.role}`,
    `# ${p.runs} run${p.runs === 1 ? '' : 's'}${p.branches.length > 0 ? ` on ${p.branches.join(', ')}` : ''}`,
    roleManifest(p),
    '',
    `# policy diff (to try it first, add "shadowRole: ${proposedRoleName(key.role)}" to the rule instead: the gateway counts what it would deny)`,
    policyDiff(p),
  ];
  if (p.refusedByVetting.length > 0) {
    out.push('', '# used, but the broker refuses to grant it (left out):');
    for (const v of p.refusedByVetting)
      out.push(
        `#   ${flow(v.rule.verbs)} ${flow(v.rule.resources)} (${flow(v.rule.apiGroups)}): ${v.why.join('; ')}`,
      );
  }
  if (p.refused.length > 0) {
    out.push('', '# refused (403): tried and lacked, not in the proposal');
    out.push(...p.refused.map((t) => `#${tallyLine(t)}`));
  }
  if (p.outsideRole.length > 0) {
    out.push('', '# allowed, but no Role can grant it (cluster-scoped or non-resource): not in the proposal');
    out.push(...p.outsideRole.map((t) => `#${tallyLine(t)}`));
  }
  return `${out.join('\n')}\n`;
}
