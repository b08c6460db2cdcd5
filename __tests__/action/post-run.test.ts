// The post step with faked broker and API-server fallback: each early return, revocation through
// the broker with the grant's own token, the direct fallback only when the broker is unreachable,
// shredding in every case, and never a failed job.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DirectRevokeInput, DirectRevokeResult } from '../../src/action/direct-revoke.js';
import { NetworkError } from '../../src/action/http-transport.js';
import { renderKubeconfig } from '../../src/action/kubeconfig.js';
import { run, type PostDeps } from '../../src/action/post-run.js';
import { createPrivateDir } from '../../src/action/safe-fs.js';
import { STATE } from '../../src/action/state.js';
import {
  brokerError,
  exchangeResponse,
  fakeCore,
  json,
  scriptedTransport,
  TOKEN,
  virtualClock,
  type Responder,
} from './support/fakes.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'k8s-ea-post-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** The plugin's cache for credentials: exec (credential-cache.ts), its token the kubeconfig's. */
function credentialCache(o: Record<string, string>) {
  return {
    version: 1,
    grantId: 'gha-1234-abcd',
    token: TOKEN,
    tokenExpiresAt: '2030-01-01T00:10:00Z',
    expiresAt: '2030-01-01T00:05:00Z',
    grantedAt: '2029-12-31T23:45:00Z',
    brokerUrl: 'https://broker.example.com/',
    audience: 'k8s-ephemeral-access',
    ...o,
  };
}

/** What main leaves behind after success: a private dir with the kubeconfig, and the state. */
async function mainLeftovers(overrides: Record<string, string> = {}) {
  const dir = await createPrivateDir(root, 'k8s-ephemeral-access-');
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, renderKubeconfig(exchangeResponse(), 'ctx'), { mode: 0o600 });
  const state: Record<string, string> = {
    [STATE.revoke]: 'true',
    [STATE.brokerUrl]: 'https://broker.example.com/',
    [STATE.dir]: dir,
    [STATE.kubeconfigPath]: path,
    [STATE.grantId]: 'gha-1234-abcd',
    [STATE.namespace]: 'team-a',
    [STATE.expiresAt]: '2030-01-01T00:15:00Z',
    ...overrides,
  };
  return { dir, path, state };
}

function setup(
  state: Record<string, string>,
  responders: Responder[] = [() => json(200, { revoked: true })],
  inputs: Record<string, string> = {},
) {
  const core = fakeCore(inputs, state);
  const transport = scriptedTransport(...responders);
  const direct: DirectRevokeInput[] = [];
  let directResult: DirectRevokeResult | Error = { roleBinding: 'deleted', serviceAccount: 'deleted' };
  const deps: PostDeps = {
    core,
    createTransport: () => transport.transport,
    revokeDirect: async (input) => {
      direct.push(input);
      if (directResult instanceof Error) throw directResult;
      return directResult;
    },
    readFile: async (p) => readFileSync(p, 'utf8'),
    clock: virtualClock(),
  };
  return {
    core,
    deps,
    transport,
    direct,
    failDirect: (err: Error) => {
      directResult = err;
    },
  };
}

describe('post: early returns', () => {
  test('without state (main did not run) it does nothing and says so', async () => {
    const s = setup({});
    await run(s.deps);
    expect(s.core.infos).toEqual([expect.stringMatching(/^Nothing to clean up/)]);
    expect(s.transport.requests).toEqual([]);
    expect(s.core.failed).toEqual([]);
  });

  test('revoke: false skips revocation but still shreds the kubeconfig', async () => {
    const m = await mainLeftovers({ [STATE.revoke]: 'false' });
    const s = setup(m.state);
    await run(s.deps);
    expect(s.transport.requests).toEqual([]);
    expect(s.core.infos[0]).toMatch(/Not revoking grant gha-1234-abcd \(input revoke is false\)/);
    expect(existsSync(m.path)).toBe(false);
    expect(existsSync(m.dir)).toBe(false);
  });

  test('main failed after creating the directory but before a grant: removes the directory', async () => {
    const dir = await createPrivateDir(root, 'k8s-ephemeral-access-');
    const s = setup({ [STATE.revoke]: 'true', [STATE.brokerUrl]: 'https://b/', [STATE.dir]: dir });
    await run(s.deps);
    expect(s.core.infos[0]).toBe('No grant was issued; nothing to revoke.');
    expect(existsSync(dir)).toBe(false);
    expect(s.transport.requests).toEqual([]);
  });

  test('running post twice is harmless: the second run finds nothing to revoke with', async () => {
    const m = await mainLeftovers();
    const first = setup(m.state);
    await run(first.deps);
    const second = setup(m.state);
    await run(second.deps);
    expect(second.transport.requests).toEqual([]);
    expect(second.core.warnings).toEqual([]);
    expect(second.core.failed).toEqual([]);
    expect(second.core.infos[0]).toMatch(/no longer exists/);
  });
});

describe('post: revocation', () => {
  test('revokes through the broker with the grant token, then shreds file and directory', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state);
    await run(s.deps);
    expect(s.transport.requests).toHaveLength(1);
    const req = s.transport.requests[0]!;
    expect(req.method).toBe('DELETE');
    expect(req.url.href).toBe('https://broker.example.com/v1/grants/gha-1234-abcd');
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(s.core.secrets).toEqual([TOKEN]);
    expect(s.core.infos).toContain('Revoked grant gha-1234-abcd through the broker.');
    expect(existsSync(m.path)).toBe(false);
    expect(existsSync(m.dir)).toBe(false);
    expect(s.direct).toEqual([]);
  });

  test("gateway mode: the broker's usage of the grant goes into the job summary; without it, nothing is written", async () => {
    const usage = {
      calls: 2,
      rules: [
        {
          rule: { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
          calls: 1,
          used: [{ verb: 'get', apiGroup: '', resource: 'configmaps', names: ['app'], calls: 1 }],
        },
        { rule: { apiGroups: [''], resources: ['pods'], verbs: ['delete'] }, calls: 0, used: [] },
      ],
      unmatched: [],
      refused: [{ verb: 'list', apiGroup: '', resource: 'secrets', names: [], calls: 1 }],
    };
    const written: string[] = [];
    const m = await mainLeftovers();
    const s = setup(m.state, [() => json(200, { grantId: 'gha-1234-abcd', revoked: true, usage })]);
    await run({ ...s.deps, writeSummary: async (md) => void written.push(md) });
    expect(written).toHaveLength(1);
    expect(written[0]).toContain('| (core) | pods | delete | any | **never used** |');
    expect(written[0]).toContain('- `list` secrets: 1 call');
    expect(written[0]).not.toContain(TOKEN);

    const plain = setup((await mainLeftovers()).state);
    const none: string[] = [];
    await run({ ...plain.deps, writeSummary: async (md) => void none.push(md) });
    expect(none).toEqual([]);
  });

  test("direct mode: the audit log's usage goes into the job summary, and so does why it is unavailable", async () => {
    const usage = {
      source: 'audit-log',
      calls: 1,
      unmatched: [],
      refused: [{ verb: 'list', apiGroup: '', resource: 'secrets', names: [], calls: 1 }],
      incomplete: 'log-starts-after-grant',
    };
    const written: string[] = [];
    const s = setup((await mainLeftovers()).state, [
      () => json(200, { grantId: 'gha-1234-abcd', revoked: true, usage }),
    ]);
    await run({ ...s.deps, writeSummary: async (md) => void written.push(md) });
    expect(written).toHaveLength(1);
    expect(written[0]).toContain("1 call in the API server's audit log");
    expect(written[0]).toContain('begins after the grant did');

    const none: string[] = [];
    const u = setup((await mainLeftovers()).state, [
      () => json(200, { grantId: 'gha-1234-abcd', revoked: true, usageUnavailable: 'no-audit-log' }),
    ]);
    await run({ ...u.deps, writeSummary: async (md) => void none.push(md) });
    expect(none).toHaveLength(1);
    expect(none[0]).toMatch(/^## Kubernetes access used\n\nUnavailable: .* this broker is given none/);
    // A value this action does not know is not written.
    const odd: string[] = [];
    const o = setup((await mainLeftovers()).state, [
      () => json(200, { grantId: 'gha-1234-abcd', revoked: true, usageUnavailable: '<script>' }),
    ]);
    await run({ ...o.deps, writeSummary: async (md) => void odd.push(md) });
    expect(odd).toEqual([]);
    // job-summary: false leaves it out, as it leaves out main's table.
    const off: string[] = [];
    const f = setup(
      (await mainLeftovers()).state,
      [() => json(200, { grantId: 'gha-1234-abcd', revoked: true, usage })],
      { 'job-summary': 'false' },
    );
    await run({ ...f.deps, writeSummary: async (md) => void off.push(md) });
    expect([off, f.core.warnings]).toEqual([[], []]);
  });

  test('a grant the broker no longer knows (404) counts as revoked', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => brokerError(404, 'ERR_NOT_FOUND', 'not found')]);
    await run(s.deps);
    expect(s.core.warnings).toEqual([]);
    expect(s.core.infos).toContain('Grant gha-1234-abcd was already gone.');
  });

  test.each([
    ['an HTML 404 page (a proxy or ingress, not the broker)', 404, '<html><body>404 Not Found</body></html>'],
    ["a JSON 404 without the broker's error shape", 404, '{"message":"no route"}'],
    ['a 404 claiming another code', 404, '{"error":{"code":"ERR_FORBIDDEN","message":"x"}}'],
    ['an HTML 403 page from a firewall', 403, '<html>Forbidden</html>'],
  ])('%s is not "already gone": post revokes directly at the API server', async (_l, status, body) => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => ({ status, headers: { 'content-type': 'text/html' }, body })]);
    await run(s.deps);
    expect(s.core.infos).not.toContain('Grant gha-1234-abcd was already gone.');
    expect(s.direct).toHaveLength(1);
    expect(s.direct[0]).toMatchObject({ grantId: 'gha-1234-abcd', namespace: 'team-a', token: TOKEN });
    expect(s.core.infos).toContain(
      'Revoked grant gha-1234-abcd directly: RoleBinding deleted, ServiceAccount deleted.',
    );
    expect(s.core.warnings).toEqual([]);
  });

  test.each([
    ['network error', () => new NetworkError('cannot reach broker.example.com: ECONNREFUSED')],
    ['HTTP 503', () => brokerError(503, 'ERR_UNAVAILABLE', 'temporarily unavailable; retry later')],
  ])(
    'broker unreachable (%s): retries briefly, then revokes directly at the API server',
    async (_l, responder) => {
      const m = await mainLeftovers();
      const s = setup(m.state, [responder]);
      await run(s.deps);
      expect(s.transport.requests).toHaveLength(3);
      expect(s.direct).toEqual([
        {
          server: 'https://127.0.0.1:6443',
          certificateAuthorityData: exchangeResponse().certificateAuthorityData,
          token: TOKEN,
          namespace: 'team-a',
          grantId: 'gha-1234-abcd',
        },
      ]);
      expect(s.core.infos).toContain(
        'Revoked grant gha-1234-abcd directly: RoleBinding deleted, ServiceAccount deleted.',
      );
      expect(s.core.warnings).toEqual([]);
      expect(existsSync(m.dir)).toBe(false);
    },
  );

  test('gateway mode, broker unreachable: no direct attempt (nowhere to send it); a warning names the reaper', async () => {
    const m = await mainLeftovers({ [STATE.mode]: 'gateway' });
    const s = setup(m.state, [() => new NetworkError('cannot reach broker.example.com: ECONNREFUSED')]);
    await run(s.deps);
    expect(s.transport.requests).toHaveLength(3);
    expect(s.direct).toEqual([]);
    expect(s.core.warnings).toEqual([
      expect.stringMatching(
        /^Could not revoke grant gha-1234-abcd: the broker is unreachable .*ECONNREFUSED.*can only be revoked through it\. The broker removes it at 2030-01-01T00:15:00Z at the latest\.$/,
      ),
    ]);
    expect(s.core.failed).toEqual([]);
    expect(existsSync(m.dir)).toBe(false);
  });

  test.each([
    ['static, past its expiry', {}, '2029-12-31T23:59:00Z'],
    [
      'credentials: exec, past its last renewed end (the session limit)',
      { cache: '2029-12-31T23:59:00Z' },
      '2029-12-31T23:50:00Z',
    ],
  ])('a grant that had already ended (%s): the 401 is no warning', async (_l, o, stateEnd) => {
    const m = await mainLeftovers({ [STATE.expiresAt]: stateEnd });
    if ('cache' in o) {
      const cachePath = join(m.dir, 'credential.json');
      writeFileSync(cachePath, JSON.stringify(credentialCache({ expiresAt: o.cache })), { mode: 0o600 });
      m.state[STATE.credentialCache] = cachePath;
    }
    const s = setup(m.state, [() => brokerError(401, 'ERR_UNAUTHENTICATED', 'token rejected')]);
    await run(s.deps);
    expect(s.core.warnings).toEqual([]);
    expect(s.core.infos).toContainEqual(
      expect.stringMatching(
        /^Grant gha-1234-abcd had already ended \(.*401.*\); the broker's reaper removes/,
      ),
    );
    expect(s.direct).toEqual([]);
    expect(existsSync(m.dir)).toBe(false);
  });

  test('a 401 for a grant that has not ended yet is still a warning', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => brokerError(401, 'ERR_UNAUTHENTICATED', 'token rejected')]);
    await run(s.deps);
    expect(s.core.warnings).toEqual([expect.stringMatching(/^Could not revoke grant gha-1234-abcd: .*401/)]);
  });

  test('a clear refusal (403) is a warning naming the grant, with no direct attempt', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => brokerError(403, 'ERR_FORBIDDEN', 'not allowed by the broker policy')]);
    await run(s.deps);
    expect(s.direct).toEqual([]);
    expect(s.core.warnings).toEqual([
      expect.stringMatching(/^Could not revoke grant gha-1234-abcd: broker refused/),
    ]);
    expect(s.core.failed).toEqual([]);
    expect(existsSync(m.path)).toBe(false);
  });

  test('when the direct path fails too: a warning, the files are still shredded, the job does not fail', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => new NetworkError('down')]);
    s.failDirect(new Error('delete RoleBinding team-a/gha-1234-abcd: ECONNREFUSED'));
    await run(s.deps);
    expect(s.core.warnings).toEqual([
      expect.stringMatching(
        /Could not revoke grant gha-1234-abcd: .*ECONNREFUSED.*removes it at 2030-01-01T00:15:00Z/,
      ),
    ]);
    expect(s.core.failed).toEqual([]);
    expect(existsSync(m.path)).toBe(false);
    expect(existsSync(m.dir)).toBe(false);
  });

  test('a kubeconfig that no longer holds the credential is a warning; it is still removed', async () => {
    const m = await mainLeftovers();
    writeFileSync(m.path, 'apiVersion: v1\nkind: Config\n');
    const s = setup(m.state);
    await run(s.deps);
    expect(s.transport.requests).toEqual([]);
    expect(s.core.warnings[0]).toMatch(/no longer holds the grant's credential/);
    expect(existsSync(m.dir)).toBe(false);
  });

  test('nothing post prints contains the token', async () => {
    const m = await mainLeftovers();
    const s = setup(m.state, [() => new NetworkError('down')]);
    await run(s.deps);
    const printed = s.core.calls.filter((c) => c.method !== 'setSecret').flatMap((c) => c.args);
    expect(printed.join('\n')).not.toContain(TOKEN);
  });
});
