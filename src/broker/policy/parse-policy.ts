// Reads and validates a policy file. Anything doubtful is an error that names the file, the line,
// the field and the fix; the broker does not start with a policy it does not fully understand.
// docs/policy.md documents the format; this file is its executable definition.
import type { RuleSummary } from '../../shared/api.js';
import { DNS_LABEL, DNS_LABEL_RULE, MAX_TTL_SECONDS, MIN_TTL_SECONDS } from '../../shared/contract.js';
import { readCidrList } from '../yaml-fields/cidr-list.js';
import { FieldReader, isMapping, describe as describeValue } from '../yaml-fields/fields.js';
import { parseYamlSource, type YamlPath } from '../yaml-fields/yaml-source.js';
import { dangerousFindings, forbiddenRoleNameProblem } from './dangerous.js';
import { createPolicyEngine } from './engine.js';
import { globPatternProblem, hasWildcard } from './glob.js';
import { DEFAULT_BROKER_NAMESPACE, jobNamespaceProblem } from './job-namespaces.js';
import { isWellFormedRef } from './matcher.js';
import {
  GLOB_FIELDS,
  MATCH_FIELDS,
  type MatchField,
  type Policy,
  type PolicyRule,
  type RoleDefinition,
  type RuleMatch,
  type ValueMatcher,
} from './types.js';

export const POLICY_API_VERSION = 'k8s-ephemeral-access/v1';
export const POLICY_KIND = 'Policy';
/** Namespaces, and the names of roles and rules (they end up in labels), are DNS-1123 labels. */
const DNS_LABEL_HINT = `must be a DNS-1123 label: ${DNS_LABEL_RULE}`;
const DECIMAL_ID = /^[1-9][0-9]{0,19}$/;
/** RBAC object names are path segments: no "/" or "%", not "." or "..". */
const RBAC_NAME = /^(?!\.{1,2}$)[^/%\s]+$/;
const VERB = /^([a-z]+|\*)$/;
const RESOURCE = /^[a-z0-9*][a-z0-9.*-]*(\/[a-z0-9*][a-z0-9.*-]*)?$/;
const API_GROUP = /^(|\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/;
const EVENT_NAME = /^[a-z_]+$/;
const RUNNER_ENVIRONMENTS = ['github-hosted', 'self-hosted'];

export interface PolicyContext {
  /**
   * The issuers the broker trusts. With more than one, every rule must pin `iss`: repository and owner
   * IDs are unique only within one GitHub instance. Pinned values must be among them.
   */
  issuers?: readonly string[];
  /** The broker's own namespace, refused as a job namespace (default DEFAULT_BROKER_NAMESPACE). */
  brokerNamespace?: string;
}

/** Parses policy YAML text; `fileName` is used in error messages. Throws ConfigError. */
export function parsePolicy(text: string, fileName: string, context: PolicyContext = {}): Policy {
  const source = parseYamlSource(text, fileName);
  const r = new FieldReader(source);
  const doc = r.mapping([], source.value, { required: ['apiVersion', 'kind', 'roles', 'rules'] });
  if (!doc) {
    r.finish();
    throw new Error('unreachable');
  }
  if (doc.apiVersion !== POLICY_API_VERSION)
    r.report(['apiVersion'], `must be "${POLICY_API_VERSION}", got ${JSON.stringify(doc.apiVersion)}`);
  if (doc.kind !== POLICY_KIND)
    r.report(['kind'], `must be "${POLICY_KIND}", got ${JSON.stringify(doc.kind)}`);

  const roles = readRoles(r, doc.roles);
  // Rules may name any declared role, valid or not, so one bad role gives one error, not one per use.
  const declared = isMapping(doc.roles) ? Object.keys(doc.roles) : [];
  const rules =
    r.list(['rules'], doc.rules, (path, value) => readRule(r, path, value, declared, context)) ?? [];
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const first = seen.get(rule.name);
    if (first !== undefined)
      r.report(
        ['rules', i, 'name'],
        `"${rule.name}" is already the name of rules[${first}]; rule names must be unique`,
      );
    else seen.set(rule.name, i);
  });
  r.finish();
  return createPolicyEngine(rules, roles ?? {});
}

function readRoles(r: FieldReader, value: unknown): Record<string, RoleDefinition> | undefined {
  if (!isMapping(value))
    return r.report(['roles'], `must be a mapping of role names to definitions, got ${describeValue(value)}`);
  const roles: Record<string, RoleDefinition> = {};
  let good = true;
  for (const [name, def] of Object.entries(value)) {
    const path = ['roles', name];
    if (!DNS_LABEL.test(name)) {
      r.report(path, `role name ${JSON.stringify(name)} ${DNS_LABEL_HINT}`);
      good = false;
      continue;
    }
    const role = readRole(r, path, def);
    if (role) roles[name] = role;
    else good = false;
  }
  return good ? roles : undefined;
}

function readRole(r: FieldReader, path: YamlPath, value: unknown): RoleDefinition | undefined {
  const def = r.mapping(path, value, { optional: ['clusterRole', 'role', 'rules'] });
  if (!def) return undefined;
  const kinds = ['clusterRole', 'role', 'rules'].filter((k) => Object.hasOwn(def, k));
  if (kinds.length !== 1)
    return r.report(
      path,
      'must have exactly one of clusterRole (a named ClusterRole), role (a named Role) or rules (inline)',
    );
  if (def.rules !== undefined) return readInlineRole(r, [...path, 'rules'], def.rules);
  const key = def.clusterRole !== undefined ? 'clusterRole' : 'role';
  const name = r.string([...path, key], def[key], {
    pattern: RBAC_NAME,
    hint: 'is not a valid Kubernetes object name',
    maxLength: 253,
  });
  if (name === undefined) return undefined;
  const forbidden = forbiddenRoleNameProblem(name);
  if (forbidden) return r.report([...path, key], forbidden);
  return key === 'clusterRole' ? { kind: 'ClusterRole', name } : { kind: 'Role', name };
}

function readInlineRole(r: FieldReader, path: YamlPath, value: unknown): RoleDefinition | undefined {
  const rules = r.list(path, value, (p, v) => readRbacRule(r, p, v), { nonEmpty: true });
  if (!rules) return undefined;
  const findings = dangerousFindings(rules);
  for (const f of findings)
    r.report(
      [...path, f.index],
      `${f.why}; jobs may never be granted this (see docs/policy.md, "Refused permissions")`,
    );
  return findings.length === 0 ? { kind: 'Inline', rules } : undefined;
}

function readRbacRule(r: FieldReader, path: YamlPath, value: unknown): RuleSummary | undefined {
  const rule = r.mapping(path, value, {
    required: ['apiGroups', 'resources', 'verbs'],
    optional: ['resourceNames'],
  });
  if (!rule) return undefined;
  const strings = (key: string, pattern: RegExp, hint: string, allowEmpty = false) =>
    r.list(
      [...path, key],
      rule[key],
      (p, v) => (allowEmpty && v === '' ? '' : r.string(p, v, { pattern, hint, maxLength: 253 })),
      { nonEmpty: true, unique: true },
    );
  const apiGroups = strings('apiGroups', API_GROUP, 'is not an API group (use "" for the core group)', true);
  const resources = strings(
    'resources',
    RESOURCE,
    'is not a lowercase resource name such as pods or deployments/scale',
  );
  const verbs = strings(
    'verbs',
    VERB,
    'is not a lowercase verb such as get, list, watch, create, update, patch, delete',
  );
  const resourceNames =
    rule.resourceNames === undefined
      ? undefined
      : strings('resourceNames', RBAC_NAME, 'is not a valid Kubernetes object name');
  if (!apiGroups || !resources || !verbs || (rule.resourceNames !== undefined && !resourceNames))
    return undefined;
  return resourceNames ? { apiGroups, resources, verbs, resourceNames } : { apiGroups, resources, verbs };
}

function readRule(
  r: FieldReader,
  path: YamlPath,
  value: unknown,
  declaredRoles: readonly string[],
  context: PolicyContext,
): PolicyRule | undefined {
  const rule = r.mapping(path, value, {
    required: ['name', 'match', 'namespaces', 'roles', 'maxTtlSeconds'],
    optional: ['sourceRanges', 'maxSessionSeconds'],
  });
  if (!rule) return undefined;
  const name = r.string([...path, 'name'], rule.name, {
    pattern: DNS_LABEL,
    hint: DNS_LABEL_HINT,
  });
  const match = readMatch(r, [...path, 'match'], rule.match, context);
  const namespaces = r.list(
    [...path, 'namespaces'],
    rule.namespaces,
    (p, v) => {
      const namespace = r.string(p, v, {
        pattern: DNS_LABEL,
        hint: `is not a namespace name: ${DNS_LABEL_HINT}`,
      });
      if (namespace === undefined) return undefined;
      const problem = jobNamespaceProblem(namespace, context.brokerNamespace ?? DEFAULT_BROKER_NAMESPACE);
      return problem ? r.report(p, problem) : namespace;
    },
    { nonEmpty: true, unique: true },
  );
  const roleNames = r.list(
    [...path, 'roles'],
    rule.roles,
    (p, v) => {
      const roleName = r.string(p, v);
      if (roleName === undefined) return undefined;
      if (!declaredRoles.includes(roleName))
        return r.report(
          p,
          `role "${roleName}" is not defined under roles: (defined: ${declaredRoles.join(', ') || 'none'})`,
        );
      return roleName;
    },
    { nonEmpty: true, unique: true },
  );
  const maxTtlSeconds = r.integer(
    [...path, 'maxTtlSeconds'],
    rule.maxTtlSeconds,
    MIN_TTL_SECONDS,
    MAX_TTL_SECONDS,
  );
  const sourceRanges =
    rule.sourceRanges === undefined
      ? undefined
      : readCidrList(r, [...path, 'sourceRanges'], rule.sourceRanges, {
          emptyProblem: 'must list at least one range; leave sourceRanges out to admit any source address',
        });
  const maxSessionSeconds = readMaxSession(
    r,
    [...path, 'maxSessionSeconds'],
    rule.maxSessionSeconds,
    maxTtlSeconds,
  );
  if (name === undefined || !match || !namespaces || !roleNames || maxTtlSeconds === undefined)
    return undefined;
  if (rule.sourceRanges !== undefined && !sourceRanges) return undefined;
  if (maxSessionSeconds === null) return undefined;
  const line = r.source.lineOf(path);
  return {
    name,
    source: line === undefined ? r.source.fileName : `${r.source.fileName}:${line}`,
    match,
    namespaces,
    roles: roleNames,
    maxTtlSeconds,
    ...(sourceRanges && { sourceRanges }),
    ...(maxSessionSeconds === undefined ? {} : { maxSessionSeconds }),
  };
}

/** Absent: grants of the rule cannot be renewed. null: reported as invalid. */
function readMaxSession(
  r: FieldReader,
  path: YamlPath,
  value: unknown,
  maxTtlSeconds: number | undefined,
): number | undefined | null {
  if (value === undefined) return undefined;
  const seconds = r.integer(path, value, MIN_TTL_SECONDS, MAX_TTL_SECONDS);
  if (seconds === undefined) return null;
  if (maxTtlSeconds !== undefined && seconds < maxTtlSeconds) {
    r.report(path, `must be at least maxTtlSeconds (${maxTtlSeconds}), got ${seconds}`);
    return null;
  }
  return seconds;
}

function readMatch(
  r: FieldReader,
  path: YamlPath,
  value: unknown,
  context: PolicyContext,
): RuleMatch | undefined {
  const block = r.mapping(path, value, {
    required: ['repository_owner_id', 'repository_id', 'event_name'],
    optional: MATCH_FIELDS.filter((f) => !['repository_owner_id', 'repository_id', 'event_name'].includes(f)),
  });
  if (!block) return undefined;
  if (block.ref === undefined && block.environment === undefined) {
    r.report(
      path,
      'must pin "ref" or "environment" (or both), so that not every branch of the repository is trusted',
    );
    return undefined;
  }
  const issuers = context.issuers ?? [];
  if (block.iss === undefined && issuers.length > 1) {
    r.report(
      path,
      `must pin "iss": the broker trusts ${issuers.length} issuers, and repository and owner IDs are unique only within one`,
    );
    return undefined;
  }
  const match: RuleMatch = {};
  let good = true;
  for (const field of MATCH_FIELDS) {
    if (block[field] === undefined) continue;
    const matchers = readMatchValues(r, [...path, field], field, block[field], context);
    if (matchers) match[field] = matchers;
    else good = false;
  }
  return good ? match : undefined;
}

/** A single value or a list of values; each an exact string or (for some fields) `{ glob: ... }`. */
function readMatchValues(
  r: FieldReader,
  path: YamlPath,
  field: MatchField,
  value: unknown,
  context: PolicyContext,
): ValueMatcher[] | undefined {
  if (!Array.isArray(value)) {
    const one = readMatchValue(r, path, field, value, context);
    return one ? [one] : undefined;
  }
  const list = r.list(path, value, (p, v) => readMatchValue(r, p, field, v, context), { nonEmpty: true });
  if (!list) return undefined;
  const keys = list.map((m) => JSON.stringify(m));
  const dup = keys.findIndex((k, i) => keys.indexOf(k) !== i);
  if (dup !== -1) return r.report([...path, dup], 'is listed twice; remove the duplicate');
  return list;
}

function readMatchValue(
  r: FieldReader,
  path: YamlPath,
  field: MatchField,
  value: unknown,
  context: PolicyContext,
): ValueMatcher | undefined {
  if (isMapping(value)) {
    if (!GLOB_FIELDS.includes(field))
      return r.report(path, `globs are not allowed for ${field}; list the exact values`);
    const glob = r.mapping(path, value, { required: ['glob'] });
    if (!glob) return undefined;
    const pattern = r.string([...path, 'glob'], glob.glob);
    if (pattern === undefined) return undefined;
    const problem = globPatternProblem(pattern) ?? globFieldProblem(field, pattern);
    if (problem) return r.report([...path, 'glob'], `pattern ${JSON.stringify(pattern)} ${problem}`);
    return { glob: pattern };
  }
  if (typeof value === 'number' && (field === 'repository_id' || field === 'repository_owner_id'))
    return r.report(path, `IDs must be quoted strings, as GitHub sends them: ${field}: "${value}"`);
  const exact = r.string(path, value);
  if (exact === undefined) return undefined;
  const problem = exactValueProblem(field, exact, context);
  return problem ? r.report(path, `${JSON.stringify(exact)} ${problem}`) : { exact };
}

function exactValueProblem(field: MatchField, value: string, context: PolicyContext): string | undefined {
  switch (field) {
    case 'iss':
      if (!context.issuers) return value.startsWith('https://') ? undefined : 'is not an https:// issuer URL';
      return context.issuers.includes(value)
        ? undefined
        : `is not one of the issuers the broker trusts (${context.issuers.join(', ')})`;
    case 'repository_id':
    case 'repository_owner_id':
      return DECIMAL_ID.test(value)
        ? undefined
        : `is not a numeric ID; ${field} is the immutable number GitHub assigns (never the name), e.g. "123456789"`;
    case 'ref':
      if (value.includes('*'))
        return `contains "*" but exact values are literal; to match a pattern write { glob: ${JSON.stringify(value)} }`;
      return isWellFormedRef(value)
        ? undefined
        : 'is not a full git ref; write e.g. refs/heads/main or refs/tags/v1.2.3';
    case 'event_name':
      return EVENT_NAME.test(value)
        ? undefined
        : 'is not a GitHub event name such as push or workflow_dispatch';
    case 'runner_environment':
      return RUNNER_ENVIRONMENTS.includes(value)
        ? undefined
        : `must be one of ${RUNNER_ENVIRONMENTS.join(', ')}`;
    case 'environment':
      return value.includes('*')
        ? 'contains "*": environments are matched by exact name only (a writer could create a look-alike)'
        : undefined;
    case 'job_workflow_ref':
      return value.includes('*')
        ? `contains "*" but exact values are literal; to match a pattern write { glob: ${JSON.stringify(value)} }`
        : undefined;
  }
}

/** Extra limits per field, so that a glob can never widen a rule to other repositories or ref kinds. */
function globFieldProblem(field: MatchField, pattern: string): string | undefined {
  const [first, second] = pattern.split('/');
  if (field === 'ref') {
    const third = pattern.split('/')[2];
    if (first !== 'refs' || second === undefined || hasWildcard(second) || third === undefined)
      return 'must start with a literal refs/<kind>/, e.g. refs/heads/release/* or refs/tags/v*';
    // refs/heads/* or refs/heads/** would trust every branch, which pinning a ref is meant to prevent.
    if (third === '' || hasWildcard(third[0]!))
      return 'must not match every ref of its kind: start the name with a literal, e.g. refs/heads/release/* or refs/tags/v*';
  }
  if (field === 'job_workflow_ref') {
    if (first === undefined || second === undefined || hasWildcard(first) || hasWildcard(second))
      return 'must start with a literal owner/repo/, e.g. octo-org/deploy-workflows/.github/workflows/deploy.yml@refs/tags/v*';
  }
  return undefined;
}
