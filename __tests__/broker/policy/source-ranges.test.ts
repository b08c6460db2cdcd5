// A rule's `sourceRanges`: read strictly (file, line, field, fix), checked at exchange as the last
// stage of a rule's match, and asked by the gateway per request through sourceAllowed().
import { describe, expect, test } from '@jest/globals';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { policyYaml, type RuleSpec } from '../../../test/support/policy.js';
import { parsePolicy, type Policy } from '../../../src/broker/policy/index.js';
import { ConfigError } from '../../../src/broker/config/load-config.js';
import { BrokerError } from '../../../src/shared/errors.js';
import type { ExchangeRequest } from '../../../src/shared/api.js';
import type { VerifiedClaims } from '../../../src/broker/types.js';

const load = (rules: RuleSpec[]): Policy =>
  parsePolicy(policyYaml({ namespaces: ['staging'], rules }), 'policy.yaml');

function problems(ranges: unknown): string[] {
  const text = policyYaml({ namespaces: ['staging'], rules: [{ name: 'ranged' }] }).replace(
    'maxTtlSeconds: 900',
    `maxTtlSeconds: 900\n    sourceRanges: ${JSON.stringify(ranges)}`,
  );
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.line}: ${i.field}: ${i.message}`);
  }
  throw new Error('policy was accepted');
}

const claims = (): VerifiedClaims =>
  ({
    ...defaultClaims(),
    iss: 'https://token.actions.githubusercontent.com',
    aud: 'k8s-ephemeral-access',
    jti: 'j-1',
    iat: 0,
    exp: 0,
  }) as VerifiedClaims;
const viewer: ExchangeRequest = { namespace: 'staging', role: 'viewer' };

function reasonOf(policy: Policy, address: string | undefined, request = viewer): string {
  try {
    policy.authorize(claims(), request, address);
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).code).toBe('ERR_FORBIDDEN');
    return (err as BrokerError).reason;
  }
  throw new Error('request was allowed');
}

describe('reading sourceRanges', () => {
  test('IPv4 and IPv6 ranges load, in canonical form', () => {
    const policy = load([{ sourceRanges: ['10.0.0.0/8', '2001:DB8::/32', '192.0.2.7/32'] }]);
    expect(policy.rules[0]!.sourceRanges).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.7/32']);
  });

  test('a rule without sourceRanges has none (any source)', () => {
    expect(load([{}]).rules[0]).not.toHaveProperty('sourceRanges');
  });

  test.each([
    [
      ['10.1.2.3/8'],
      'sourceRanges[0]: "10.1.2.3/8" has address bits set beyond its /8 prefix; write 10.0.0.0/8',
    ],
    [['10.1.2.3'], 'write 10.1.2.3/32 for this one address'],
    [['10.0.0.0/33'], 'prefix length must be a whole number from 0 to 32'],
    [
      ['fe80::/10', 'fe80::%eth0/64'],
      'sourceRanges[1]: "fe80::%eth0/64" "fe80::%eth0" is not an IPv4 or IPv6 address',
    ],
    [['::ffff:10.0.0.0/104'], 'write the IPv4 range'],
    [['2001:db8::/32', '2001:DB8:0::/32'], 'sourceRanges[1]: "2001:db8::/32" is listed twice'],
    [[], 'must list at least one range; leave sourceRanges out to admit any source address'],
    ['10.0.0.0/8', 'must be a list'],
    [[8], 'sourceRanges[0]: must be a string'],
  ])('%j is refused: %s', (ranges, problem) => {
    const found = problems(ranges);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^\d+: rules\[0\]\.sourceRanges/);
    expect(found[0]).toContain(problem);
  });
});

describe('authorize with sourceRanges', () => {
  const ranged = load([{ name: 'ci-runners', sourceRanges: ['10.0.0.0/8', '2001:db8::/32'] }]);

  test('an address inside the ranges is granted; outside is source_not_allowed', () => {
    expect(ranged.authorize(claims(), viewer, '10.1.2.3').ruleName).toBe('ci-runners');
    expect(ranged.authorize(claims(), viewer, '2001:db8::5').ruleName).toBe('ci-runners');
    expect(ranged.authorize(claims(), viewer, '::ffff:10.1.2.3').ruleName).toBe('ci-runners');
    expect(reasonOf(ranged, '127.0.0.1')).toBe('source_not_allowed');
    expect(reasonOf(ranged, '2001:db9::5')).toBe('source_not_allowed');
  });

  test('an unknown address (none given, or garbage) is outside every range', () => {
    expect(reasonOf(ranged, undefined)).toBe('source_not_allowed');
    expect(reasonOf(ranged, 'unknown')).toBe('source_not_allowed');
    // A rule without ranges does not care where the request comes from.
    expect(load([{}]).authorize(claims(), viewer, undefined).ruleName).toBe('main-pushes');
  });

  test('the other stages come first: source_not_allowed only when nothing but the address is wrong', () => {
    expect(reasonOf(ranged, '127.0.0.1', { namespace: 'prod', role: 'viewer' })).toBe(
      'namespace_not_allowed',
    );
    expect(reasonOf(ranged, '127.0.0.1', { ...viewer, role: 'deployer' })).toBe('role_not_allowed');
    expect(reasonOf(ranged, '127.0.0.1', { ...viewer, ttlSeconds: 3600 })).toBe('ttl_exceeds_rule');
    const other = { ...claims(), repository_id: '1' } as VerifiedClaims;
    expect(() => ranged.authorize(other, viewer, '127.0.0.1')).toThrow(
      expect.objectContaining({ reason: 'no_matching_rule' }),
    );
  });

  test('a rule whose ranges exclude the client does not match: the next rule in file order may', () => {
    const policy = load([
      { name: 'office', sourceRanges: ['192.0.2.0/24'], maxTtlSeconds: 3600 },
      { name: 'anywhere-short', maxTtlSeconds: 300 },
    ]);
    expect(policy.authorize(claims(), viewer, '192.0.2.9')).toMatchObject({
      ruleName: 'office',
      ttlSeconds: 3600,
    });
    expect(policy.authorize(claims(), viewer, '203.0.113.9')).toMatchObject({
      ruleName: 'anywhere-short',
      ttlSeconds: 300,
    });
    // The TTL stage narrows first: only the office rule allows an hour, and not from here.
    expect(reasonOf(policy, '203.0.113.9', { ...viewer, ttlSeconds: 3600 })).toBe('source_not_allowed');
  });

  test("the refusal's detail names only rules that matched the claims, never for the client", () => {
    const policy = load([
      { name: 'other-repo', match: { repository_id: '1' }, sourceRanges: ['0.0.0.0/0'] },
      { name: 'ci-runners', sourceRanges: ['10.0.0.0/8'] },
    ]);
    try {
      policy.authorize(claims(), viewer, '127.0.0.1');
      throw new Error('allowed');
    } catch (err) {
      expect((err as BrokerError).reason).toBe('source_not_allowed');
      expect((err as BrokerError).message).toBe('rules ci-runners do not admit the client address 127.0.0.1');
    }
  });
});

describe('sourceAllowed (the gateway, per request)', () => {
  const policy = load([
    { name: 'ci-runners', sourceRanges: ['10.0.0.0/8', '2001:db8::/32'] },
    { name: 'anywhere' },
  ]);

  test.each([
    ['ci-runners', '10.200.0.1', true],
    ['ci-runners', '::ffff:10.200.0.1', true],
    ['ci-runners', '2001:db8::1', true],
    ['ci-runners', '127.0.0.1', false],
    ['ci-runners', '::1', false],
    ['ci-runners', undefined, false],
    ['ci-runners', 'garbage', false],
    ['anywhere', '127.0.0.1', true],
    ['anywhere', undefined, true],
    // A grant whose rule the policy no longer has (edited and reloaded) is refused: fail closed.
    ['removed-rule', '10.200.0.1', false],
    ['', '10.200.0.1', false],
    ['__proto__', '10.200.0.1', false],
  ])('rule %j, address %j → %s', (rule, address, allowed) => {
    expect(policy.sourceAllowed(rule, address)).toBe(allowed);
  });
});
