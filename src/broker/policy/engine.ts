// Decides one exchange request against the loaded policy: default deny, rules tried in file order,
// the first rule that matches the claims, allows the namespace, the role and the TTL, and admits
// the client's address wins. A refusal names the furthest stage any rule reached, for the audit
// log (never for the client); source_not_allowed therefore means that a rule would have granted
// exactly this request from another address.
import type { ExchangeRequest } from '../../shared/api.js';
import { MIN_TTL_SECONDS, type Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import { createAddressSet, type AddressSet } from '../net/cidr.js';
import type { Grantable, InlineRoleUse, NamedRole, RoleRef, VerifiedClaims } from '../types.js';
import { matchesClaims } from './matcher.js';
import type { Policy, PolicyRule, RoleDefinition } from './types.js';

function forbidden(reason: Reason, message: string, maxTtlSeconds?: number): BrokerError {
  return new BrokerError('ERR_FORBIDDEN', reason, message, { maxTtlSeconds });
}

function roleRef(name: string, def: RoleDefinition): RoleRef {
  return def.kind === 'Inline'
    ? { kind: 'Inline', name, rules: def.rules }
    : { kind: def.kind, name: def.name };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function createPolicyEngine(rules: PolicyRule[], roles: Record<string, RoleDefinition>): Policy {
  deepFreeze(rules);
  deepFreeze(roles);
  const sourceRanges = new Map<string, AddressSet>();
  for (const rule of rules)
    if (rule.sourceRanges) sourceRanges.set(rule.name, createAddressSet(rule.sourceRanges));
  const admits = (rule: PolicyRule, clientAddress: string | undefined): boolean =>
    sourceRanges.get(rule.name)?.has(clientAddress) ?? true;

  function authorize(claims: VerifiedClaims, request: ExchangeRequest, clientAddress?: string): Grantable {
    const { namespace, role, ttlSeconds } = request;
    if (typeof namespace !== 'string' || typeof role !== 'string')
      throw new BrokerError('ERR_BAD_REQUEST', 'invalid_request', 'namespace and role must be strings');
    if (ttlSeconds !== undefined) {
      if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds))
        throw new BrokerError('ERR_BAD_REQUEST', 'ttl_invalid', 'ttlSeconds must be a whole number');
      if (ttlSeconds < MIN_TTL_SECONDS)
        throw new BrokerError(
          'ERR_BAD_REQUEST',
          'ttl_too_short',
          `ttlSeconds must be at least ${MIN_TTL_SECONDS}`,
        );
    }

    const matching = rules.filter((rule) => matchesClaims(rule.match, claims));
    if (matching.length === 0) throw forbidden('no_matching_rule', 'no policy rule matches the token claims');
    const inNamespace = matching.filter((rule) => rule.namespaces.includes(namespace));
    if (inNamespace.length === 0)
      throw forbidden(
        'namespace_not_allowed',
        `rules ${names(matching)} do not allow namespace ${JSON.stringify(namespace)}`,
      );
    const withRole = inNamespace.filter((rule) => rule.roles.includes(role));
    if (withRole.length === 0)
      throw forbidden(
        'role_not_allowed',
        `rules ${names(inNamespace)} do not allow role ${JSON.stringify(role)}`,
      );
    const withTtl =
      ttlSeconds === undefined ? withRole : withRole.filter((r) => ttlSeconds <= r.maxTtlSeconds);
    if (withTtl.length === 0)
      throw forbidden(
        'ttl_exceeds_rule',
        `ttlSeconds ${ttlSeconds} exceeds maxTtlSeconds of rules ${names(withRole)}`,
        Math.max(...withRole.map((r) => r.maxTtlSeconds)),
      );
    const rule = withTtl.find((r) => admits(r, clientAddress));
    if (!rule)
      throw forbidden(
        'source_not_allowed',
        `rules ${names(withTtl)} do not admit the client address ${clientAddress ?? '(unknown)'}`,
      );

    const definition = roles[role];
    if (!definition)
      throw new BrokerError('ERR_INTERNAL', 'policy_inconsistent', `role ${role} is not defined`);
    return {
      ruleName: rule.name,
      namespace,
      role,
      roleRef: roleRef(role, definition),
      rules: definition.kind === 'Inline' ? definition.rules : [],
      ttlSeconds: ttlSeconds ?? rule.maxTtlSeconds,
      ...(rule.maxSessionSeconds === undefined ? {} : { maxSessionSeconds: rule.maxSessionSeconds }),
    };
  }

  const namespaces = Object.freeze([...new Set(rules.flatMap((rule) => rule.namespaces))].sort());
  const namedRoles = Object.freeze(namedRolesOf(rules, roles));
  const byName = new Map(rules.map((rule) => [rule.name, rule]));
  const inlineRoles = Object.freeze(inlineRolesOf(rules, roles));
  return Object.freeze({
    rules,
    roles,
    authorize,
    sourceAllowed(ruleName: string, clientAddress: string | undefined) {
      const rule = byName.get(ruleName);
      return rule !== undefined && admits(rule, clientAddress);
    },
    namespaces: () => namespaces,
    namedRoles: () => namedRoles,
    inlineRoles: () => inlineRoles,
    roleDefinition: (role: string) => roles[role],
    shadowRole(ruleName: string) {
      const role = byName.get(ruleName)?.shadowRole;
      const definition = role === undefined ? undefined : roles[role];
      return role && definition?.kind === 'Inline' ? { role, rules: definition.rules } : undefined;
    },
  });
}

/** Roles no rule grants are left out: the broker need not (and may not be allowed to) read them. */
function namedRolesOf(rules: readonly PolicyRule[], roles: Record<string, RoleDefinition>): NamedRole[] {
  const found = new Map<string, NamedRole>();
  for (const rule of rules)
    for (const role of rule.roles) {
      const def = roles[role];
      if (def?.kind === 'ClusterRole')
        found.set(`ClusterRole/${def.name}`, { kind: 'ClusterRole', name: def.name });
      if (def?.kind === 'Role')
        for (const namespace of rule.namespaces)
          found.set(`Role/${namespace}/${def.name}`, { kind: 'Role', name: def.name, namespace });
    }
  return [...found.values()];
}

/** Like namedRolesOf, for the inline roles: one entry per namespace a granting rule lists. */
function inlineRolesOf(rules: readonly PolicyRule[], roles: Record<string, RoleDefinition>): InlineRoleUse[] {
  const found = new Map<string, InlineRoleUse>();
  for (const rule of rules)
    for (const role of rule.roles) {
      const def = roles[role];
      if (def?.kind === 'Inline')
        for (const namespace of rule.namespaces)
          found.set(`${namespace}/${role}`, { namespace, role, rules: def.rules });
    }
  return [...found.values()];
}

function names(rules: readonly PolicyRule[]): string {
  return rules.map((r) => r.name).join(', ');
}
