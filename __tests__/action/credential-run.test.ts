// The credential plugin's run against a scripted token service and broker (the real ones, and the
// real kubectl, are in renewal.cluster.test.ts): what it prints, what it rewrites, that racing plugins renew
// once, and that every failure is one line on stderr without a secret.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CredentialCache } from '../../src/action/credential-cache.js';
import { run, type CredentialDeps } from '../../src/action/credential-run.js';
import type { HttpRequest, HttpResponse } from '../../src/action/http-transport.js';

const GRANT = 'gha-0123456789abcdef0123456789abcdef';
const OLD_TOKEN = 'old.kubernetes.token';
const NEW_TOKEN = 'new.kubernetes.token';
const JWT = 'github.oidc.jwt';
const T0 = Date.parse('2030-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

let dir: string;
let path: string;
let requests: HttpRequest[];
let brokerAnswer: () => HttpResponse;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-plugin-'));
  path = join(dir, 'credential.json');
  requests = [];
  brokerAnswer = () => ({
    status: 200,
    headers: {},
    body: JSON.stringify({
      grantId: GRANT,
      token: NEW_TOKEN,
      tokenExpiresAt: iso(T0 + 600_000),
      expiresAt: iso(T0 + 100_000),
      sessionEndsAt: iso(T0 + 150_000),
      newToken: true,
    }),
  });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeCache(o: Partial<CredentialCache> = {}): void {
  const cache: CredentialCache = {
    version: 1,
    grantId: GRANT,
    token: OLD_TOKEN,
    tokenExpiresAt: iso(T0 + 600_000),
    expiresAt: iso(T0 + 60_000),
    grantedAt: iso(T0),
    brokerUrl: 'https://broker.example.com/k8s/',
    audience: 'k8s-ephemeral-access',
    ...o,
  };
  writeFileSync(path, JSON.stringify(cache), { mode: 0o600 });
}

const readCache = () => JSON.parse(readFileSync(path, 'utf8')) as CredentialCache;

function deps(now: number, env: Record<string, string> = jobEnv()) {
  const out = { stdout: '', stderr: '' };
  const d: CredentialDeps = {
    args: [path],
    env,
    createTransport: () => async (req) => {
      requests.push(req);
      await new Promise((r) => setTimeout(r, 20));
      if (req.url.host === 'token.actions.example')
        return { status: 200, headers: {}, body: JSON.stringify({ value: JWT }) };
      return brokerAnswer();
    },
    now: () => now,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5))),
    stdout: (t) => void (out.stdout += t),
    stderr: (t) => void (out.stderr += t),
  };
  return { d, out };
}

const jobEnv = () => ({
  ACTIONS_ID_TOKEN_REQUEST_URL: 'https://token.actions.example/token?api-version=2.0',
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runtime-token',
});

const credentialOf = (stdout: string) =>
  JSON.parse(stdout) as {
    apiVersion: string;
    kind: string;
    status: { token: string; expirationTimestamp: string };
  };

describe('credential plugin', () => {
  test('fresh: prints the cached token, expiring when renewal is due, without a network call', async () => {
    writeCache();
    const { d, out } = deps(T0 + 10_000);
    expect(await run(d)).toBe(0);
    expect(credentialOf(out.stdout)).toEqual({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      status: { token: OLD_TOKEN, expirationTimestamp: '2030-01-01T00:00:40Z' },
    });
    expect(out.stderr).toBe('');
    expect(requests).toEqual([]);
  });

  test('due: renews with a fresh JWT and the grant token, rewrites the 0600 cache, prints the new token', async () => {
    writeCache();
    const { d, out } = deps(T0 + 45_000);
    expect(await run(d)).toBe(0);
    expect(credentialOf(out.stdout).status).toEqual({
      token: NEW_TOKEN,
      // Renewed at +45 s to +100 s: the next renewal is due a third of 55 s before the end.
      expirationTimestamp: iso(T0 + 100_000 - Math.floor(55_000 / 3) + 1000).replace(/\.\d+Z$/, 'Z'),
    });
    const [token, renew] = requests;
    expect(token!.url.searchParams.get('audience')).toBe('k8s-ephemeral-access');
    expect(renew!.url.href).toBe(`https://broker.example.com/k8s/v1/grants/${GRANT}/renew`);
    expect(renew!.headers.authorization).toBe(`Bearer ${JWT}`);
    expect(JSON.parse(renew!.body!)).toEqual({ grantToken: OLD_TOKEN });
    expect(readCache()).toMatchObject({
      token: NEW_TOKEN,
      expiresAt: iso(T0 + 100_000),
      sessionEndsAt: iso(T0 + 150_000),
      grantedAt: new Date(T0 + 45_000).toISOString(),
    });
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(readCache())).not.toContain(JWT);
    expect(out.stderr).toBe('');
  });

  test('two plugins due at once renew once: the second finds the renewed cache', async () => {
    writeCache();
    const a = deps(T0 + 45_000);
    const b = deps(T0 + 45_000);
    const codes = await Promise.all([run(a.d), run(b.d)]);
    expect(codes).toEqual([0, 0]);
    expect(requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(credentialOf(a.out.stdout).status.token).toBe(NEW_TOKEN);
    expect(credentialOf(b.out.stdout).status.token).toBe(NEW_TOKEN);
  });

  test('outside a job: one clear line on stderr, exit 1, once the token has ended', async () => {
    writeCache();
    const { d, out } = deps(T0 + 61_000, {});
    expect(await run(d)).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(
      /^k8s-ephemeral-access: could not renew grant gha-\S+, which ended at .*ACTIONS_ID_TOKEN_REQUEST_URL.*\n$/,
    );
    expect(out.stderr.split('\n')).toHaveLength(2);
    expect(requests).toEqual([]);
  });

  test('outside a job but before the end: a warning, and the cached token until then', async () => {
    writeCache();
    const { d, out } = deps(T0 + 45_000, {});
    expect(await run(d)).toBe(0);
    expect(credentialOf(out.stdout).status.token).toBe(OLD_TOKEN);
    expect(out.stderr).toMatch(/^k8s-ephemeral-access: warning: could not renew grant/);
  });

  test('a refusal by the broker is recorded: no second attempt, the token to its end, then the refusal', async () => {
    writeCache();
    brokerAnswer = () => ({
      status: 403,
      headers: {},
      body: JSON.stringify({ error: { code: 'ERR_FORBIDDEN', message: 'not allowed by the broker policy' } }),
    });
    const first = deps(T0 + 45_000);
    expect(await run(first.d)).toBe(0);
    expect(first.out.stderr).toContain('HTTP 403');
    expect(readCache().refused).toContain('not allowed by the broker policy');
    const second = deps(T0 + 50_000);
    expect(await run(second.d)).toBe(0);
    expect(second.out.stderr).toBe('');
    expect(requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    const ended = deps(T0 + 60_000);
    expect(await run(ended.d)).toBe(1);
    expect(ended.out.stderr).toContain('cannot be renewed: broker refused the renewal');
    for (const o of [first.out, second.out, ended.out]) expect(o.stderr).not.toContain(OLD_TOKEN);
  });

  test('a cache that is not a private file of this user is refused', async () => {
    writeCache();
    const text = readFileSync(path, 'utf8');
    rmSync(path);
    writeFileSync(path, text, { mode: 0o644 });
    const { d, out } = deps(T0);
    expect(await run(d)).toBe(1);
    expect(out.stderr).toContain('is not a private (0600) file');
  });

  test('no cache: the grant was revoked when the job ended', async () => {
    const { d, out } = deps(T0);
    expect(await run(d)).toBe(1);
    expect(out.stderr).toContain('the grant was revoked');
  });

  test('kubectl runs the plugin again for each failing request: its line once per kubectl process', async () => {
    writeCache({ sessionEndsAt: iso(T0 + 60_000) });
    const runAs = async (parentPid: number) => {
      const { d, out } = deps(T0 + 61_000);
      expect(await run({ ...d, parentPid })).toBe(1);
      return out.stderr;
    };
    const first = await runAs(4242);
    expect(first).toMatch(/^k8s-ephemeral-access: grant gha-\S+ ended at .*session limit.*\n$/);
    // The same kubectl asks again (discovery retries): exit 1 again, nothing more printed.
    expect([await runAs(4242), await runAs(4242)]).toEqual(['', '']);
    expect(lstatSync(`${path}.reported`).mode & 0o777).toBe(0o600);
    // The next kubectl (a later step) gets the line again.
    expect(await runAs(4343)).toBe(first);
    // Without a parent to tell them apart, every run prints it.
    const { d, out } = deps(T0 + 61_000);
    expect(await run(d)).toBe(1);
    expect(out.stderr).toBe(first);
  });
});
