// Grant names and labels: deterministic, unique per token, always valid Kubernetes names/labels.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  grantAnnotations,
  grantIdFor,
  grantLabels,
  isGrantId,
  labelValue,
  revokeObjectName,
  runUrl,
} from '../../src/broker/naming.js';
import { credentialIdOf } from '../../src/broker/audit.js';
import type { VerifiedClaims } from '../../src/broker/types.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const claims = (o: Partial<VerifiedClaims> = {}): VerifiedClaims => ({
  iss: 'https://token.actions.githubusercontent.com',
  aud: 'k8s-ephemeral-access',
  jti: 'a3f1c6e2-1111-2222-3333-444455556666',
  exp: 0,
  iat: 0,
  repository_id: '74',
  repository_owner_id: '65',
  repository: 'Octo-Org/My_Repo.js',
  repository_owner: 'Octo-Org',
  run_id: '9876543210',
  run_attempt: '2',
  ref: 'refs/heads/main',
  event_name: 'push',
  ...o,
});

describe('grant ids', () => {
  test('same token → same id (replays collide); any differing input → another id', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.string(),
        fc.string(),
        fc.string(),
        (iss, jti, repo, run, attempt) => {
          const c = { iss, jti, repository_id: repo, run_id: run, run_attempt: attempt };
          const id = grantIdFor(c);
          expect(grantIdFor({ ...c })).toBe(id);
          expect(isGrantId(id)).toBe(true);
          expect(DNS_LABEL.test(id)).toBe(true);
          expect(DNS_LABEL.test(revokeObjectName(id))).toBe(true);
          expect(grantIdFor({ ...c, jti: `${jti}x` })).not.toBe(id);
          expect(grantIdFor({ ...c, run_attempt: `${attempt}1` })).not.toBe(id);
        },
      ),
    );
  });

  test('field boundaries are unambiguous (no concatenation collisions)', () => {
    const a = grantIdFor({ iss: 'i', jti: 'ab', repository_id: 'c', run_id: '1', run_attempt: '1' });
    const b = grantIdFor({ iss: 'i', jti: 'a', repository_id: 'bc', run_id: '1', run_attempt: '1' });
    expect(a).not.toBe(b);
  });

  test('only gha-<32 hex> is a grant id', () => {
    for (const bad of [
      'gha-',
      'gha-XYZ',
      `gha-${'a'.repeat(31)}`,
      `gha-${'a'.repeat(33)}`,
      `x${'a'.repeat(35)}`,
      '../etc',
    ])
      expect(isGrantId(bad)).toBe(false);
  });
});

describe('labels and annotations', () => {
  test('label values are always valid, hashing what does not fit', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const v = labelValue(s);
        expect(v.length).toBeLessThanOrEqual(63);
        expect(LABEL_VALUE.test(v)).toBe(true);
      }),
    );
    expect(labelValue('123456789')).toBe('123456789');
    expect(labelValue('octo/repo')).toMatch(/^h-[0-9a-f]{40}$/);
  });

  test('numeric ids in labels, readable names in annotations', () => {
    const c = claims({ workflow: 'Deploy prod', actor: 'octocat', sha: 'f'.repeat(40) });
    const labels = grantLabels('gha-x', c);
    expect(labels).toMatchObject({
      'k8s-ephemeral-access.io/repository-id': '74',
      'k8s-ephemeral-access.io/run-id': '9876543210',
      'k8s-ephemeral-access.io/run-attempt': '2',
      'app.kubernetes.io/managed-by': 'k8s-ephemeral-access',
    });
    for (const v of Object.values(labels)) expect(LABEL_VALUE.test(v)).toBe(true);
    const a = grantAnnotations(c, {
      expiresAt: new Date('2026-01-02T03:04:05.678Z'),
      role: 'deployer',
      ruleName: 'r',
    });
    expect(a).toMatchObject({
      'k8s-ephemeral-access.io/expires-at': '2026-01-02T03:04:05Z',
      'k8s-ephemeral-access.io/repository': 'Octo-Org/My_Repo.js',
      'k8s-ephemeral-access.io/workflow': 'Deploy prod',
      'k8s-ephemeral-access.io/github-jti': c.jti,
      'k8s-ephemeral-access.io/run-url':
        'https://github.com/Octo-Org/My_Repo.js/actions/runs/9876543210/attempts/2',
    });
  });

  test('run URLs for github.com and GHES, none for unknown issuers', () => {
    expect(runUrl(claims({ iss: 'https://ghe.example.com/_services/token' }))).toBe(
      'https://ghe.example.com/Octo-Org/My_Repo.js/actions/runs/9876543210/attempts/2',
    );
    expect(runUrl(claims({ iss: 'http://127.0.0.1:1234' }))).toBeUndefined();
  });

  test('credential id from a token payload, undefined for garbage', () => {
    const payload = Buffer.from(JSON.stringify({ jti: 'abc-123' })).toString('base64url');
    expect(credentialIdOf(`eyJhbGciOiJSUzI1NiJ9.${payload}.sig`)).toBe('JTI=abc-123');
    expect(credentialIdOf('garbage')).toBeUndefined();
  });
});
