// The live-grant table's rules without a cluster: a ServiceAccount counts only with a JWT-use
// record for its namespace, expiry is the earlier of the two and is checked against the clock,
// deletions and local revocations are final (a late event cannot bring a grant back), and every
// grant that leaves is announced so its open requests can be cut.
import { describe, expect, test } from '@jest/globals';
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { LiveGrants } from '../../src/broker/gateway/live-grants.js';

const GRANT = 'gha-0123456789abcdef0123456789abcdef';
const T0 = Date.parse('2026-11-30T00:00:00Z');

function sa(o: { name?: string; uid?: string; expiresAt?: string } = {}): V1ServiceAccount {
  return {
    metadata: {
      name: o.name ?? GRANT,
      uid: o.uid ?? 'uid-1',
      labels: { 'k8s-ephemeral-access.io/run-id': '42', 'k8s-ephemeral-access.io/run-attempt': '1' },
      annotations: {
        'k8s-ephemeral-access.io/expires-at': o.expiresAt ?? '2026-11-30T00:10:00Z',
        'k8s-ephemeral-access.io/repository': 'octo-org/octo-repo',
        'k8s-ephemeral-access.io/policy-rule': 'main-pushes',
      },
    },
  };
}

const record = (o: { namespace?: string; grantExpiresAt?: number } = {}) => ({
  grantId: GRANT,
  namespace: o.namespace ?? 'team-a',
  grantExpiresAt: o.grantExpiresAt ?? Date.parse('2026-11-30T00:10:00Z'),
  keepUntil: T0 + 3_600_000,
});

function table(now = { t: T0 }) {
  const t = new LiveGrants(() => now.t);
  const gone: string[] = [];
  t.onGone((uid) => gone.push(uid));
  return { t, gone, now };
}

describe('LiveGrants', () => {
  test('a ServiceAccount with its JWT-use record is live, with its run and rule', () => {
    const { t } = table();
    t.upsertRecord(record());
    t.upsertServiceAccount('team-a', sa());
    expect(t.live('uid-1')).toMatchObject({
      grantId: GRANT,
      namespace: 'team-a',
      ruleName: 'main-pushes',
      expiresAt: Date.parse('2026-11-30T00:10:00Z'),
      run: { repository: 'octo-org/octo-repo', run_id: '42', run_attempt: '1' },
    });
  });

  test('labels prove nothing: no record, a record for another namespace, or no grant-id name is not live', () => {
    const { t } = table();
    t.upsertServiceAccount('team-a', sa());
    expect(t.live('uid-1')).toBeUndefined();
    t.upsertRecord(record({ namespace: 'team-b' }));
    expect(t.live('uid-1')).toBeUndefined();
    t.upsertServiceAccount('team-a', sa({ name: 'ci-bot', uid: 'uid-2' }));
    expect(t.live('uid-2')).toBeUndefined();
  });

  test('expiry is the earlier of annotation and record, to the millisecond, and unreadable means ended', () => {
    const { t, now } = table();
    t.upsertRecord(record({ grantExpiresAt: T0 + 60_000 }));
    t.upsertServiceAccount('team-a', sa({ expiresAt: '2026-11-30T00:05:00Z' }));
    now.t = T0 + 59_999;
    expect(t.live('uid-1')?.expiresAt).toBe(T0 + 60_000);
    now.t = T0 + 60_000;
    expect(t.live('uid-1')).toBeUndefined();
    now.t = T0;
    t.upsertServiceAccount('team-a', sa({ expiresAt: 'soon' }));
    expect(t.live('uid-1')).toBeUndefined();
  });

  test('an annotation moved later (renewal) extends it only together with the record', () => {
    const { t, now } = table();
    t.upsertRecord(record({ grantExpiresAt: T0 + 60_000 }));
    t.upsertServiceAccount('team-a', sa({ expiresAt: '2026-11-30T00:01:00Z' }));
    now.t = T0 + 90_000;
    expect(t.live('uid-1')).toBeUndefined();
    t.upsertServiceAccount('team-a', sa({ expiresAt: '2026-11-30T00:02:00Z' }));
    expect(t.live('uid-1')).toBeUndefined();
    t.upsertRecord(record({ grantExpiresAt: T0 + 120_000 }));
    expect(t.live('uid-1')).toBeDefined();
  });

  test('deleted or revoked here: gone, announced, and a late event cannot bring it back', () => {
    const { t, gone } = table();
    t.upsertRecord(record());
    t.upsertServiceAccount('team-a', sa());
    t.forget('team-a', GRANT);
    expect(t.live('uid-1')).toBeUndefined();
    expect(gone).toEqual(['uid-1']);
    // Its record stays a while, for the lines of refused calls that still carry its token.
    expect(t.ended('uid-1')).toMatchObject({ grantId: GRANT, run: { run_id: '42' } });
    t.upsertServiceAccount('team-a', sa());
    expect(t.live('uid-1')).toBeUndefined();
    t.removeServiceAccount(sa());
    expect(t.size).toBe(0);
    expect(t.ended('uid-1')?.grantId).toBe(GRANT);
  });

  test('a look-alike of the same grant id in another namespace neither evicts the grant nor, deleted, keeps it out', () => {
    const { t, gone } = table();
    t.upsertRecord(record());
    t.upsertServiceAccount('team-a', sa());
    // Whoever may create ServiceAccounts in team-b copies the name, labels and annotations.
    t.upsertServiceAccount('team-b', sa({ uid: 'uid-lookalike' }));
    expect(t.live('uid-1')?.namespace).toBe('team-a');
    expect(t.live('uid-lookalike')).toBeUndefined();
    t.removeServiceAccount(sa({ uid: 'uid-lookalike' }));
    expect(gone).toEqual(['uid-lookalike']);
    expect(t.live('uid-1')).toBeDefined();
    // The grant's own later events (a renewal moving its end) are still taken.
    t.upsertServiceAccount('team-a', sa({ expiresAt: '2026-11-30T00:20:00Z' }));
    expect(t.live('uid-1')?.expiresAt).toBe(Date.parse('2026-11-30T00:10:00Z'));
    // A revocation by namespace and grant id ends the grant, never the look-alike's namesake.
    t.upsertServiceAccount('team-b', sa({ uid: 'uid-lookalike-2' }));
    t.forget('team-b', GRANT);
    expect(t.live('uid-1')).toBeDefined();
    t.forget('team-a', GRANT);
    expect(t.live('uid-1')).toBeUndefined();
    expect(gone).toEqual(['uid-lookalike', 'uid-lookalike-2', 'uid-1']);
  });

  test('a fresh listing drops what is no longer there, in that namespace only', () => {
    const { t, gone } = table();
    t.upsertRecord(record());
    t.upsertServiceAccount('team-a', sa());
    t.upsertServiceAccount('team-b', sa({ name: 'gha-ffffffffffffffffffffffffffffffff', uid: 'uid-b' }));
    t.replaceNamespace('team-a', []);
    expect(gone).toEqual(['uid-1']);
    expect(t.size).toBe(1);
  });

  test('a record that goes ends the grant too, and says so', () => {
    const { t, gone } = table();
    t.upsertRecord(record());
    t.upsertServiceAccount('team-a', sa());
    t.replaceRecords(new Map());
    expect(t.live('uid-1')).toBeUndefined();
    expect(gone).toEqual(['uid-1']);
  });

  test('thousands of grants stay small records', () => {
    const { t } = table();
    for (let i = 0; i < 5_000; i += 1) {
      const name = `gha-${i.toString(16).padStart(32, '0')}`;
      t.upsertRecord({ ...record(), grantId: name });
      t.upsertServiceAccount('team-a', sa({ name, uid: `uid-${i}` }));
    }
    expect(t.size).toBe(5_000);
    expect(t.live('uid-4999')?.grantId).toBe(`gha-${(4999).toString(16).padStart(32, '0')}`);
  });
});
