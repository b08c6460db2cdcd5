// The smallest Role that allows every call the runs of one group (rule, repository, workflow,
// role) were allowed: exactly the verbs and resources used, with resourceNames only where every
// run touched the same names. Evidence per rule (calls, runs, branches); refused calls (403) and
// what a Role cannot grant (cluster-scoped or non-resource calls) are listed apart. The proposal
// is vetted as any role the broker grants (policy/dangerous.ts); a refused permission is taken
// out and named.
import type { RuleSummary } from '../../shared/api.js';
import { dangerousFindings } from '../policy/dangerous.js';
import { outcomeOf, rbacRequestOf } from '../usage/api-call.js';
import type { GroupKey, ObservedCall } from './audit-input.js';

export interface Evidence {
  calls: number;
  runs: number;
  branches: string[];
}

export interface ProposedRule extends RuleSummary, Evidence {}

/** Calls listed apart from the rules, by what they asked. */
export interface CallTally {
  verb: string;
  apiGroup: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  names: string[];
  calls: number;
  runs: number;
}

export interface Proposal {
  key: GroupKey;
  runs: number;
  branches: string[];
  /** Namespaces the grants were made in: where the Role must exist. */
  namespaces: string[];
  rules: ProposedRule[];
  /** Permissions the runs used that the broker refuses to grant (and why). */
  refusedByVetting: { rule: ProposedRule; why: string[] }[];
  /** 403s: what the jobs tried and lacked. */
  refused: CallTally[];
  /** Allowed calls a Role cannot grant: cluster-scoped resources and non-resource URLs. */
  outsideRole: CallTally[];
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

interface Permission {
  apiGroup: string;
  resource: string;
  verb: string;
  namesByRun: Map<string, Set<string>>;
  unnamed: boolean;
  calls: number;
  branches: Set<string>;
}

function permissionsOf(calls: readonly ObservedCall[]): Permission[] {
  const byKey = new Map<string, Permission>();
  for (const call of calls) {
    const r = rbacRequestOf(call);
    const resource = r.subresource ? `${r.resource}/${r.subresource}` : r.resource!;
    const id = JSON.stringify([r.apiGroup, resource, r.verb]);
    let p = byKey.get(id);
    if (!p) {
      p = {
        apiGroup: call.apiGroup,
        resource,
        verb: r.verb,
        namesByRun: new Map(),
        unnamed: false,
        calls: 0,
        branches: new Set(),
      };
      byKey.set(id, p);
    }
    p.calls += 1;
    if (call.branch) p.branches.add(call.branch);
    const names = p.namesByRun.get(call.run) ?? new Set<string>();
    p.namesByRun.set(call.run, names);
    if (r.name) names.add(r.name);
    else p.unnamed = true;
  }
  return [...byKey.values()];
}

/** The names every run touched, when every call named one and the runs agree; else undefined. */
function stableNames(p: Permission): string[] | undefined {
  if (p.unnamed) return undefined;
  const sets = [...p.namesByRun.values()].map((s) => sorted(s).join('\n'));
  return sets.every((s) => s === sets[0]) ? sorted(p.namesByRun.values().next().value ?? []) : undefined;
}

interface Draft {
  apiGroup: string;
  resources: Set<string>;
  verbs: Set<string>;
  names?: string[];
  calls: number;
  runs: Set<string>;
  branches: Set<string>;
}

/** Merges permissions into rules: verbs of one resource, then resources with the same verbs. */
function mergeRules(perms: Permission[]): ProposedRule[] {
  const merge = (drafts: Draft[], keyOf: (d: Draft) => string, into: (a: Draft, b: Draft) => void) => {
    const out = new Map<string, Draft>();
    for (const d of drafts) {
      const k = keyOf(d);
      const seen = out.get(k);
      if (seen) into(seen, d);
      else out.set(k, d);
    }
    return [...out.values()];
  };
  const evidence = (a: Draft, b: Draft) => {
    a.calls += b.calls;
    b.runs.forEach((r) => a.runs.add(r));
    b.branches.forEach((r) => a.branches.add(r));
  };
  const drafts: Draft[] = perms.map((p) => ({
    apiGroup: p.apiGroup,
    resources: new Set([p.resource]),
    verbs: new Set([p.verb]),
    names: stableNames(p),
    calls: p.calls,
    runs: new Set(p.namesByRun.keys()),
    branches: p.branches,
  }));
  const byResource = merge(
    drafts,
    (d) => JSON.stringify([d.apiGroup, [...d.resources], d.names ?? null]),
    (a, b) => {
      b.verbs.forEach((v) => a.verbs.add(v));
      evidence(a, b);
    },
  );
  const byVerbs = merge(
    byResource,
    (d) => JSON.stringify([d.apiGroup, sorted(d.verbs), d.names ?? null]),
    (a, b) => {
      b.resources.forEach((r) => a.resources.add(r));
      evidence(a, b);
    },
  );
  return byVerbs
    .map((d) => ({
      apiGroups: [d.apiGroup],
      resources: sorted(d.resources),
      verbs: sorted(d.verbs),
      ...(d.names ? { resourceNames: d.names } : {}),
      calls: d.calls,
      runs: d.runs.size,
      branches: sorted(d.branches),
    }))
    .sort((a, b) =>
      JSON.stringify([a.apiGroups, a.resources]).localeCompare(JSON.stringify([b.apiGroups, b.resources])),
    );
}

function tally(calls: readonly ObservedCall[]): CallTally[] {
  const byKey = new Map<string, CallTally & { runSet: Set<string> }>();
  for (const c of calls) {
    const id = JSON.stringify([c.verb, c.apiGroup, c.resource, c.subresource, c.namespace]);
    let t = byKey.get(id);
    if (!t) {
      const { verb, apiGroup, resource, subresource, namespace } = c;
      t = {
        verb,
        apiGroup,
        resource,
        subresource,
        namespace,
        names: [],
        calls: 0,
        runs: 0,
        runSet: new Set(),
      };
      byKey.set(id, t);
    }
    t.calls += 1;
    t.runSet.add(c.run);
    if (c.name && !t.names.includes(c.name)) t.names.push(c.name);
  }
  return [...byKey.values()].map(({ runSet, ...t }) => ({ ...t, names: t.names.sort(), runs: runSet.size }));
}

/** The proposal for one group's calls. */
export function proposeRole(key: GroupKey, calls: readonly ObservedCall[]): Proposal {
  const allowed = calls.filter((c) => outcomeOf(c.status) === 'allowed');
  const grantable = allowed.filter((c) => c.resource !== undefined && c.namespace !== undefined);
  const drafted = mergeRules(permissionsOf(grantable));
  const findings = dangerousFindings(drafted);
  const vetoed = new Set(findings.map((f) => f.index));
  return {
    key,
    runs: new Set(calls.map((c) => c.run)).size,
    branches: sorted(calls.flatMap((c) => (c.branch ? [c.branch] : []))),
    namespaces: sorted(calls.flatMap((c) => (c.grantNamespace ? [c.grantNamespace] : []))),
    rules: drafted.filter((_, i) => !vetoed.has(i)),
    refusedByVetting: [...vetoed].map((i) => ({
      rule: drafted[i]!,
      why: findings.filter((f) => f.index === i).map((f) => f.why),
    })),
    refused: tally(calls.filter((c) => outcomeOf(c.status) === 'refused')),
    outsideRole: tally(allowed.filter((c) => c.resource === undefined || c.namespace === undefined)),
  };
}

/** One proposal per group, in a stable order. */
export function proposeRoles(calls: readonly ObservedCall[]): Proposal[] {
  const groups = new Map<string, { key: GroupKey; calls: ObservedCall[] }>();
  for (const c of calls) {
    const id = JSON.stringify([c.key.policyRule, c.key.repositoryId, c.key.workflow, c.key.role]);
    const g = groups.get(id) ?? { key: c.key, calls: [] };
    g.calls.push(c);
    groups.set(id, g);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, g]) => proposeRole(g.key, g.calls));
}
