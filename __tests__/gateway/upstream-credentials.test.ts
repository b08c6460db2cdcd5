// The gateway's per-grant upstream credentials, with a scripted mint and clock: one TokenRequest per
// grant however many first requests arrive at once, reused until close to its end, never kept for a
// grant dropped while its credential was being minted, and dropped once the grant is no longer live.
import { describe, expect, test } from '@jest/globals';
import { CREDENTIAL_REFRESH_MS, UpstreamCredentials } from '../../src/broker/gateway/upstream-credentials.js';
import type { LiveGrant } from '../../src/broker/gateway/live-grants.js';

const grant = (uid: string, expiresAt: number): LiveGrant => ({
  uid,
  grantId: `gha-${uid.padStart(32, '0')}`,
  namespace: 'team-a',
  annotatedExpiry: expiresAt,
  expiresAt,
  run: {},
});

function scripted(start = 1_000_000) {
  let now = start;
  const asked: { name: string; uid: string; seconds: number }[] = [];
  const releases: (() => void)[] = [];
  const minted: string[] = [];
  const credentials = new UpstreamCredentials(
    async (g, seconds) => {
      asked.push({ name: g.name, uid: g.uid, seconds });
      await new Promise<void>((r) => releases.push(r));
      const token = `credential-${asked.length}`;
      return { token, tokenExpiresAt: new Date(now + 600_000) };
    },
    () => now,
    (g) => minted.push(g.grantId),
  );
  return {
    credentials,
    asked,
    minted,
    release: () => releases.splice(0).forEach((r) => r()),
    advance: (ms: number) => (now += ms),
    now: () => now,
  };
}

describe('UpstreamCredentials', () => {
  test('concurrent first requests share one TokenRequest, pinned to the grant uid; later ones reuse it', async () => {
    const s = scripted();
    const g = grant('1', s.now() + 300_000);
    const first = Promise.all([1, 2, 3].map(() => s.credentials.tokenFor(g)));
    await Promise.resolve();
    s.release();
    expect(await first).toEqual(['credential-1', 'credential-1', 'credential-1']);
    expect(s.asked).toEqual([{ name: g.grantId, uid: '1', seconds: 300 }]);
    expect(await s.credentials.tokenFor(g)).toBe('credential-1');
    expect(s.asked).toHaveLength(1);
    expect(s.minted).toEqual([g.grantId]);
    expect(s.credentials.size).toBe(1);
  });

  test('a credential close to its own end is replaced', async () => {
    const s = scripted();
    const g = grant('2', s.now() + 3_600_000);
    const first = s.credentials.tokenFor(g);
    await Promise.resolve();
    s.release();
    expect(await first).toBe('credential-1');
    s.advance(600_000 - CREDENTIAL_REFRESH_MS);
    const second = s.credentials.tokenFor(g);
    await Promise.resolve();
    s.release();
    expect(await second).toBe('credential-2');
    expect(s.asked).toHaveLength(2);
  });

  test('a grant dropped while its credential is minted keeps nothing', async () => {
    const s = scripted();
    const g = grant('3', s.now() + 300_000);
    const pending = s.credentials.tokenFor(g);
    await Promise.resolve();
    s.credentials.drop('3');
    s.release();
    await pending;
    expect(s.credentials.size).toBe(0);
    expect(s.minted).toEqual([]);
  });

  test('retainLive drops the credentials of grants no longer live', async () => {
    const s = scripted();
    const [a, b] = [grant('4', s.now() + 300_000), grant('5', s.now() + 300_000)];
    const both = Promise.all([s.credentials.tokenFor(a), s.credentials.tokenFor(b)]);
    await Promise.resolve();
    s.release();
    await both;
    expect(s.credentials.size).toBe(2);
    s.credentials.retainLive((uid) => uid === '5');
    expect(s.credentials.size).toBe(1);
    s.credentials.drop('5');
    expect(s.credentials.size).toBe(0);
  });
});
