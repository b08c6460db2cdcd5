// The built broker (build/broker/index.js, `npm run build:broker`) as operators run it: `node index.js --config <file>`,
// with the real config loader, policy file, token verifier, HTTPS, and the deploy/ RBAC.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { startOidcIssuer, type OidcIssuer } from '../../test/support/oidc-issuer.js';
import { freshNamespace, kubectlStatus, tokenKubeconfig, waitFor } from '../../test/support/cluster.js';
import {
  ensureBrokerBuilt,
  installBrokerRbac,
  managedObjects,
  startBroker,
  type BrokerRbac,
  type RunningBroker,
} from '../../test/support/broker.js';

let ns: { name: string; remove: () => Promise<void> };
let other: { name: string; remove: () => Promise<void> };
let rbac: BrokerRbac;
let issuer: OidcIssuer;
let broker: RunningBroker;
const cleanups: (() => void)[] = [];

const policyYaml = (namespace: string) => `
apiVersion: k8s-ephemeral-access/v1
kind: Policy
roles:
  deployer:
    clusterRole: k8s-ea-deployer
  viewer:
    clusterRole: k8s-ea-viewer
rules:
  - name: main-pushes
    match:
      repository_owner_id: '987654'
      repository_id: '123456789'
      ref: refs/heads/main
      event_name: push
    namespaces: [${namespace}]
    roles: [deployer, viewer]
    maxTtlSeconds: 900
`;

beforeAll(async () => {
  ns = await freshNamespace('bundle');
  other = await freshNamespace('bundle-other');
  issuer = await startOidcIssuer();
  rbac = await installBrokerRbac([ns.name]);
  broker = await startBroker({
    policyYaml: policyYaml(ns.name),
    issuer: issuer.issuer,
    namespaces: [ns.name],
    rbac,
    https: true,
  });
}, 120_000);
afterAll(async () => {
  await broker?.kill();
  cleanups.forEach((c) => c());
  await issuer?.close();
  await rbac?.cleanup();
  await Promise.all([ns?.remove(), other?.remove()]);
});

describe('the built broker over HTTPS', () => {
  test('grants, is audited on stdout without secrets, and revokes with the grant token', async () => {
    expect(broker.url).toMatch(/^https:/);
    const jwt = await issuer.sign();
    const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
      token: jwt,
      body: { namespace: ns.name, role: 'viewer', ttlSeconds: 600 },
    });
    expect(r.status).toBe(200);
    const kc = tokenKubeconfig(r.body.token, ns.name);
    cleanups.push(kc.cleanup);
    await waitFor('the grant to work', () => (kubectlStatus(kc.path, ['get', 'pods']).ok ? true : undefined));
    expect(kubectlStatus(kc.path, ['-n', other.name, 'get', 'pods'])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc.path, ['get', 'secrets'])).toMatchObject({ ok: false, status: 403 });

    await waitFor('the audit line', () => broker.audit().find((l) => l.action === 'exchange'));
    const everything = broker.stdout.join('\n') + broker.stderr.join('\n');
    expect(everything).not.toContain(r.body.token);
    expect(everything).not.toContain(jwt);
    expect(broker.audit().find((l) => l.action === 'exchange')).toMatchObject({
      grantId: r.body.grantId,
      credentialId: expect.stringMatching(/^JTI=/),
    });

    const del = await broker.request('DELETE', `/v1/grants/${r.body.grantId}`, { token: r.body.token });
    expect(del.status).toBe(200);
    expect(managedObjects([ns.name]).filter((o) => o.includes(r.body.grantId))).toEqual([]);
  });

  test('the real policy refuses another ref with 403 and creates nothing', async () => {
    const before = managedObjects([ns.name]);
    const r = await broker.request<ErrorResponse>('POST', '/v1/exchange', {
      token: await issuer.sign({ ref: 'refs/heads/evil' }),
      body: { namespace: ns.name, role: 'viewer' },
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_FORBIDDEN');
    expect(managedObjects([ns.name])).toEqual(before);
    await waitFor('the denial audit line', () => broker.audit().find((l) => l.action === 'denial'));
  });

  test('SIGTERM: stops listening and exits 0', async () => {
    const second = await startBroker({
      policyYaml: policyYaml(ns.name),
      issuer: issuer.issuer,
      namespaces: [ns.name],
      rbac,
    });
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
