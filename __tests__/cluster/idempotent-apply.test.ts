// Cluster-scoped fixtures are created without a race: several processes apply the same example
// ClusterRoles (deploy/job-clusterroles.yaml, under fresh names so each round creates them) at the
// same moment through the fixture's applyIdempotently, against the real API server. Every one
// succeeds and the objects say what deploy/ says. A fresh `npm test` once failed all of
// attack-corpus because two test files ran the client-side `kubectl apply` this way (AlreadyExists);
// the same harness runs that too and reports how often it loses, so the race is shown to be real.
import { afterAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { dump } from 'js-yaml';
import { kubectlAdmin, tryKubectlAdmin, uniqueName } from '../../test/support/cluster.js';
import { readDeployDocs } from '../../test/support/deploy-rbac.js';
import { repoRoot } from '../../test/support/repo-root.js';

const PROCESSES = 6;
const TSX_CLI = join(repoRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs');
const CHILD = join(import.meta.dirname, 'support', 'apply-child.ts');
const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-apply-race-'));
const created: string[] = [];

afterAll(() => {
  if (created.length > 0)
    tryKubectlAdmin(['delete', 'clusterrole', ...created, '--ignore-not-found', '--wait=false']);
  rmSync(dir, { recursive: true, force: true });
});

/** deploy/'s example ClusterRoles under names no other round or test file uses. */
function freshExampleRoles(): { names: string[]; file: string; rules: Record<string, unknown> } {
  const suffix = uniqueName('race');
  const docs = readDeployDocs('job-clusterroles.yaml').map((d) => ({
    ...d,
    metadata: { ...d.metadata, name: `${d.metadata.name}-${suffix}` },
  }));
  const file = join(dir, `${suffix}.yaml`);
  writeFileSync(file, docs.map((d) => dump(d)).join('---\n'));
  const names = docs.map((d) => d.metadata.name);
  created.push(...names);
  return { names, file, rules: Object.fromEntries(docs.map((d) => [d.metadata.name, d.rules])) };
}

/** Starts the children, waits until every one has loaded, then releases them all at once. */
async function applyConcurrently(file: string, mode: 'fixture' | 'client-side') {
  const children = Array.from({ length: PROCESSES }, () => {
    const child = spawn(process.execPath, [TSX_CLI, CHILD, file, mode], {
      env: process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const ready = new Promise<void>((resolve) =>
      createInterface({ input: child.stdout }).once('line', () => resolve()),
    );
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.on('close', (code) => resolve({ code, stderr })),
    );
    return { child, ready, exited };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.end('go\n');
  return Promise.all(children.map((c) => c.exited));
}

test(`${PROCESSES} processes applying the same new ClusterRoles at once through the fixture all succeed`, async () => {
  for (let round = 0; round < 3; round += 1) {
    const roles = freshExampleRoles();
    const results = await applyConcurrently(roles.file, 'fixture');
    expect(results.filter((r) => r.code !== 0)).toEqual([]);
    const live = JSON.parse(kubectlAdmin(['get', 'clusterrole', ...roles.names, '-o', 'json'])) as {
      items: { metadata: { name: string }; rules: unknown }[];
    };
    expect(Object.fromEntries(live.items.map((i) => [i.metadata.name, i.rules]))).toEqual(roles.rules);
  }

  // The same harness with the client-side apply: not asserted (whether a process loses depends on
  // timing), reported, so a reader sees the harness does produce the race the fixture avoids.
  let lost = 0;
  for (let round = 0; round < 2; round += 1) {
    const results = await applyConcurrently(freshExampleRoles().file, 'client-side');
    lost += results.filter((r) => /AlreadyExists|already exists/.test(r.stderr)).length;
  }
  console.log(
    `client-side kubectl apply: ${lost} of ${2 * PROCESSES} processes lost the race (AlreadyExists)`,
  );
}, 120_000);
