// The built broker (build/broker/index.js, `npm run build:broker`) as operators run it: `node index.js --config <file>`,
// with the real config loader, policy file, token verifier, HTTPS, and the deploy/ RBAC.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { kubectlStatus, tokenKubeconfig, waitFor } from '../../test/support/cluster.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { ensureBrokerBuilt } from '../../test/support/ensure-built.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

let env: BrokerEnv;
/** A namespace the broker has no RBAC or rule for. */
let other: string;
let broker: RunningBroker;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  env = await startBrokerEnv({
    namespaces: ['bundle'],
    outsiders: ['bundle-other'],
    policy: { rules: [{ roles: ['deployer', 'viewer'] }] },
  });
  other = env.outsiders[0]!;
  broker = await env.startBroker();
}, 120_000);
afterAll(async () => {
  await broker?.kill();
  cleanups.forEach((c) => c());
  await env?.cleanup();
});

describe('the built broker over HTTPS', () => {
  test('grants, is audited on stdout without secrets, and revokes with the grant token', async () => {
    expect(broker.url).toMatch(/^https:/);
    const jwt = await env.issuer.sign();
    const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
      token: jwt,
      body: { namespace: env.ns, role: 'viewer', ttlSeconds: 600 },
    });
    expect(r.status).toBe(200);
    const kc = tokenKubeconfig(r.body.token, env.ns);
    cleanups.push(kc.cleanup);
    await waitFor('the grant to work', () => (kubectlStatus(kc.path, ['get', 'pods']).ok ? true : undefined));
    expect(kubectlStatus(kc.path, ['-n', other, 'get', 'pods'])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc.path, ['get', 'secrets'])).toMatchObject({ ok: false, status: 403 });

    await broker.auditLine((l) => l.action === 'exchange');
    const everything = broker.stdout.join('\n') + broker.stderr.join('\n');
    expect(everything).not.toContain(r.body.token);
    expect(everything).not.toContain(jwt);
    expect(broker.audit().find((l) => l.action === 'exchange')).toMatchObject({
      grantId: r.body.grantId,
      credentialId: expect.stringMatching(/^JTI=/),
    });

    const del = await broker.request('DELETE', `/v1/grants/${r.body.grantId}`, { token: r.body.token });
    expect(del.status).toBe(200);
    expect(managedObjects([env.ns]).filter((o) => o.includes(r.body.grantId))).toEqual([]);
  });

  test('the real policy refuses another ref with 403 and creates nothing', async () => {
    const before = managedObjects([env.ns]);
    const r = await broker.request<ErrorResponse>('POST', '/v1/exchange', {
      token: await env.issuer.sign({ ref: 'refs/heads/evil' }),
      body: { namespace: env.ns, role: 'viewer' },
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_FORBIDDEN');
    expect(managedObjects([env.ns])).toEqual(before);
    await broker.auditLine((l) => l.action === 'denial');
  });

  test('SIGTERM: stops listening and exits 0', async () => {
    const second = await env.startBroker({ https: false });
    expect((await second.request('GET', '/readyz')).status).toBe(200);
    expect(await second.stop()).toBe(0);
    await expect(second.request('GET', '/healthz')).rejects.toThrow(/ECONNREFUSED/);
    expect(second.stderr.join('\n')).toContain('"msg":"stopped"');
  });
});

describe('start-up errors', () => {
  test('no --config: usage and exit 2; a broken config: exit 1 naming the problem', async () => {
    const entry = await ensureBrokerBuilt();
    const noArgs = spawnSync(process.execPath, [entry], { encoding: 'utf8' });
    expect(noArgs.status).toBe(2);
    expect(noArgs.stderr).toContain('--config');

    const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-badcfg-'));
    try {
      const cfg = join(dir, 'c.yaml');
      writeFileSync(cfg, 'policyFile: missing.yaml\ninsecureHttp: true\n');
      const bad = spawnSync(process.execPath, [entry, '--config', cfg], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('policyFile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
