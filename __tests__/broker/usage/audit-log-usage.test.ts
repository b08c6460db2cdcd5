// The direct-mode usage answer from an audit log file (usage/audit-log-usage.ts): the grant's calls
// only (its username and its ServiceAccount's uid), matched to its role's rules, the refused
// calls, the shadow role; never a body; "unavailable" without a log or when it cannot be read, and
// the gap said when the log does not reach back to the grant's start.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLogUsage, type AuditLogSource } from '../../../src/broker/usage/audit-log-usage.js';
import type { EndedGrant } from '../../../src/broker/usage/grant-usage.js';
import { createLogger } from '../../../src/broker/logger.js';
import { auditEvent, type EventSpec } from './support/audit-events.js';

const T0 = Date.parse('2026-12-05T10:00:00Z');
const GRANT_ID = 'gha-0123456789abcdef0123456789abcdef';
const USER = `system:serviceaccount:ci:${GRANT_ID}`;
const UID = '6f1c2a8e-0000-4000-8000-000000000001';
const grant: EndedGrant = {
  grantId: GRANT_ID,
  namespace: 'ci',
  serviceAccountUid: UID,
  createdAt: new Date(T0).toISOString(),
  role: 'deployer',
  ruleName: 'deploys',
};
const DEPLOYER = [
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'patch'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'delete'] },
];
const READER = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }];
const policy = {
  roleDefinition: (role: string) =>
    role === 'deployer' ? { kind: 'Inline' as const, rules: DEPLOYER } : undefined,
  shadowRole: (rule: string) => (rule === 'deploys' ? { role: 'reader', rules: READER } : undefined),
};
const k8s = { rbac: {} as never };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-usage-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function logFile(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
  return path;
}

function reporter(auditLog: AuditLogSource | undefined) {
  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (l) => void logged.push(JSON.parse(l) as Record<string, unknown>) });
  return { usage: createAuditLogUsage({ auditLog, k8s, policy, logger, now: Date.now }), logged };
}

const source = (file: string, maxReadBytes = 64 * 1024 * 1024) => ({ file, maxReadBytes });

describe('from a log holding the grant and others', () => {
  const mine = (at: number, extra: Partial<EventSpec> = {}) =>
    auditEvent({ user: USER, uid: UID, at: T0 + at, ...extra });
  const lines = [
    auditEvent({ user: 'system:admin', at: T0 - 10_000, verb: 'create', resource: 'serviceaccounts' }),
    mine(1000, { verb: 'list', resource: 'configmaps' }),
    mine(1500, { verb: 'get', resource: 'configmaps', name: 'app', stage: 'RequestReceived' }),
    mine(2000, { verb: 'get', resource: 'configmaps', name: 'app' }),
    mine(2100, { verb: 'get', resource: 'configmaps', name: 'app' }),
    mine(3000, {
      verb: 'create',
      resource: 'configmaps',
      requestObject: { kind: 'ConfigMap', data: { password: 'do-not-copy-me' } },
    }),
    mine(3500, { verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'web' }),
    mine(4000, { verb: 'list', resource: 'secrets', status: 403 }),
    // The same name with another uid: not this grant's ServiceAccount.
    auditEvent({ user: USER, uid: 'another-uid', at: T0 + 4500, verb: 'delete', resource: 'configmaps' }),
    auditEvent({ user: 'system:serviceaccount:ci:default', at: T0 + 5000, verb: 'delete', resource: 'pods' }),
    'not json at all',
  ];

  test("the grant's calls, by rule, with the refused call and what the shadow role would deny", async () => {
    const { usage } = reporter(source(logFile('mixed.log', lines)));
    const answer = await usage.report(grant);
    const u = answer!.usage!;
    expect(u.source).toBe('audit-log');
    expect(u.incomplete).toBeUndefined();
    expect(u.calls).toBe(6);
    expect(u.rules!.map((r) => [r.rule.resources, r.used.map((c) => [c.verb, c.names, c.calls])])).toEqual([
      [['deployments'], [['patch', ['web'], 1]]],
      [
        ['configmaps'],
        [
          ['list', [], 1],
          ['get', ['app'], 2],
          ['create', [], 1],
        ],
      ],
    ]);
    expect(u.refused.map((c) => [c.verb, c.resource, c.calls])).toEqual([['list', 'secrets', 1]]);
    expect(u.unmatched).toEqual([]);
    expect(u.shadow).toMatchObject({ role: 'reader', wouldDenyCalls: 2 });
    expect(u.shadow!.wouldDeny.map((c) => c.verb).sort()).toEqual(['create', 'patch']);
    expect(JSON.stringify(answer)).not.toContain('do-not-copy-me');
  });

  test('a grant that made no call: zero calls, every rule never used', async () => {
    const { usage } = reporter(source(logFile('none.log', lines)));
    const u = (await usage.report({ ...grant, grantId: 'gha-ffffffffffffffffffffffffffffffff' }))!.usage!;
    expect([u.calls, u.rules!.map((r) => r.calls), u.refused]).toEqual([0, [0, 0], []]);
  });
});

test('no audit log configured: unavailable, said so', async () => {
  expect(await reporter(undefined).usage.report(grant)).toEqual({ usageUnavailable: 'no-audit-log' });
});

test('an unreadable log: unavailable, and the reason in the broker log only', async () => {
  const { usage, logged } = reporter(source(join(dir, 'missing.log')));
  expect(await usage.report(grant)).toEqual({ usageUnavailable: 'audit-log-unreadable' });
  expect(logged).toEqual([
    expect.objectContaining({ level: 'warn', grantId: GRANT_ID, error: expect.stringMatching(/ENOENT/) }),
  ]);
});

test('a log that begins after the grant, or a read bound reached: the calls found, and the gap', async () => {
  const late = [auditEvent({ user: USER, uid: UID, at: T0 + 60_000, verb: 'list' })];
  const rotated = (await reporter(source(logFile('late.log', late))).usage.report(grant))!.usage!;
  expect([rotated.calls, rotated.incomplete]).toEqual([1, 'log-starts-after-grant']);
  const many = Array.from({ length: 5000 }, (_, i) =>
    auditEvent({ user: USER, uid: UID, at: T0 + 1000 + i, verb: 'list' }),
  );
  const bounded = (await reporter(source(logFile('many.log', many), 1024 * 1024)).usage.report(grant))!
    .usage!;
  expect(bounded.incomplete).toBe('read-limit');
  expect(bounded.calls).toBeGreaterThan(0);
  expect(bounded.calls).toBeLessThan(5000);
});
