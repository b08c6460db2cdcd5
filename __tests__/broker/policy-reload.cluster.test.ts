// Hot reload of the policy file (issue 14), in the built broker against the real control plane:
// the policy is laid out as a mounted ConfigMap is (policy.yaml → ..data/policy.yaml, ..data → a
// timestamped directory, updated by an atomic swap of the ..data symlink). A new version is picked
// up without a restart (a request refused before is allowed after, and the other way round); a
// broken one (bad YAML, a named role that does not exist) keeps the running policy and is reported
// in the log and the metrics.
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { uniqueName, waitFor } from '../../test/support/cluster.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';

let env: BrokerEnv;
let broker: RunningBroker;
let dir: string;
let version = 0;
/** A ClusterRole the broker may read and bind, but which does not exist. */
const GHOST = uniqueName('k8s-ea-test-ghost');

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** Grants `viewer` to pushes of this branch only. */
const policyFor = (branch: string) =>
  policyYaml({
    namespaces: [env.ns],
    rules: [{ name: 'one-branch', match: { ref: `refs/heads/${branch}` } }],
  });

/** What the kubelet does on a ConfigMap update: a new timestamped directory, then one rename of ..data. */
function publish(text: string): void {
  version += 1;
  const data = `..2026_11_29_00_00_00.${version}`;
  mkdirSync(join(dir, data));
  writeFileSync(join(dir, data, 'policy.yaml'), text);
  symlinkSync(data, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
}

async function metrics(): Promise<{ sha: string | undefined; failures: number; loadedAt: number }> {
  const text = (await broker.internalGet('/metrics')).text;
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  return {
    sha: /^k8s_ea_policy_info\{sha256="([0-9a-f]{64})"\} 1$/m.exec(text)?.[1],
    failures: value('k8s_ea_policy_reload_failures_total'),
    loadedAt: value('k8s_ea_policy_loaded_timestamp_seconds'),
  };
}

async function exchangeFrom(branch: string): Promise<number> {
  const token = await env.issuer.sign({ ref: `refs/heads/${branch}` });
  const r = await broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
    token,
    body: { namespace: env.ns, role: 'viewer', ttlSeconds: 60 },
  });
  return r.status;
}

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['reload'], rbac: { jobClusterRoles: [GHOST] } });
  broker = await env.startBroker({ policyYaml: policyFor('main') });
  dir = dirname(broker.configPath);
  // The same text, moved into the ConfigMap layout: the digest is unchanged, so no reload.
  publish(policyFor('main'));
  renameSync(join(dir, 'policy.yaml'), join(dir, 'policy.yaml.orig'));
  symlinkSync('..data/policy.yaml', join(dir, 'policy.yaml'));
});

afterAll(async () => {
  await env?.cleanup();
});

test('a changed policy takes over without a restart; a broken one keeps the running policy and is reported', async () => {
  const pid = broker.process.pid;
  const first = await metrics();
  expect(first).toMatchObject({ sha: sha256(policyFor('main')), failures: 0 });
  expect(await exchangeFrom('main')).toBe(200);
  expect(await exchangeFrom('release')).toBe(403);

  // 1. A new version: release allowed, main no longer.
  publish(policyFor('release'));
  await waitFor('the new policy to run', async () =>
    (await metrics()).sha === sha256(policyFor('release')) ? true : undefined,
  );
  expect(await exchangeFrom('release')).toBe(200);
  expect(await exchangeFrom('main')).toBe(403);
  expect((await metrics()).loadedAt).toBeGreaterThanOrEqual(first.loadedAt);
  expect(broker.stderr.some((l) => l.includes('"msg":"policy reloaded"'))).toBe(true);

  // 2. Broken versions, each refused and counted once: YAML the loader rejects, and a valid file
  //    naming a ClusterRole that does not exist (refused by the vetting, not the loader).
  const broken = [
    `${policyFor('main')}\n  - this is: [not closed\n`,
    policyYaml({
      namespaces: [env.ns],
      roles: { ghost: { clusterRole: GHOST } },
      rules: [{ match: { ref: 'refs/heads/main' }, roles: ['ghost'] }],
    }),
  ];
  for (const [i, text] of broken.entries()) {
    publish(text);
    await waitFor('the refusal to be counted', async () =>
      (await metrics()).failures === i + 1 ? true : undefined,
    );
    expect((await metrics()).sha).toBe(sha256(policyFor('release')));
    expect(await exchangeFrom('release')).toBe(200);
    expect(await exchangeFrom('main')).toBe(403);
  }
  const refusals = broker.stderr.filter((l) =>
    l.includes('changed policy refused; the running policy stays'),
  );
  expect(refusals).toHaveLength(2);
  expect(refusals[0]).toMatch(/"level":"error"/);
  expect(refusals[1]).toMatch(/does not exist/);

  // 3. Fixed again: main allowed once more; still the same process.
  publish(policyFor('main'));
  await waitFor('the fixed policy to run', async () =>
    (await metrics()).sha === sha256(policyFor('main')) ? true : undefined,
  );
  expect(await exchangeFrom('main')).toBe(200);
  expect(await exchangeFrom('release')).toBe(403);
  expect(broker.process.pid).toBe(pid);
  expect(broker.process.exitCode).toBeNull();
  expect((await metrics()).failures).toBe(2);
});
