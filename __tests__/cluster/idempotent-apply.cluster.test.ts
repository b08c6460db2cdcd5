// Cluster-scoped fixtures are created without a race: several kubectl processes apply the same
// example ClusterRoles (deploy/job-clusterroles.yaml, under fresh names so each round creates them)
// at the same moment, the way the fixture's applyIdempotently does, against the real API server.
// Every one succeeds and the objects say what deploy/ says. A fresh `npm test` once failed all of
// attack-corpus because two test files ran the client-side `kubectl apply` at once (AlreadyExists).
// Process start-up spreads kubectl's requests out, so the second test lines the requests up
// exactly as that race does: the client-side way (read, then create) loses, server-side apply
// does not.
import { afterAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import {
  adminConfig,
  adminKubeconfigPath,
  kubectlAdmin,
  tryKubectlAdmin,
  uniqueName,
} from '../../test/support/cluster.js';
import { IDEMPOTENT_APPLY, readDeployDocs } from '../../test/support/deploy-rbac.js';

const PROCESSES = 8;
const ROUNDS = 3;
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

/** PROCESSES kubectl processes started back to back, each applying the file as the fixture does. */
function applyConcurrently(file: string): Promise<{ code: number | null; stderr: string }[]> {
  const runs = Array.from({ length: PROCESSES }, () =>
    spawn(
      'kubectl',
      ['--kubeconfig', adminKubeconfigPath(), '--request-timeout=30s', ...IDEMPOTENT_APPLY, '-f', file],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
  );
  return Promise.all(
    runs.map(
      (child) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (code) => resolve({ code, stderr }));
        }),
    ),
  );
}

test(`${PROCESSES} processes applying the same new ClusterRoles at once the fixture's way all succeed`, async () => {
  for (let round = 0; round < ROUNDS; round += 1) {
    const roles = freshExampleRoles();
    const results = await applyConcurrently(roles.file);
    expect(results.filter((r) => r.code !== 0)).toEqual([]);
    const live = JSON.parse(kubectlAdmin(['get', 'clusterrole', ...roles.names, '-o', 'json'])) as {
      items: { metadata: { name: string }; rules: unknown }[];
    };
    expect(Object.fromEntries(live.items.map((i) => [i.metadata.name, i.rules]))).toEqual(roles.rules);
  }
}, 120_000);

/** One request to the API server as admin; resolves with the HTTP status. */
async function adminRequest(
  method: string,
  path: string,
  body?: unknown,
  contentType?: string,
): Promise<number> {
  const kc = adminConfig();
  const url = new URL(path, kc.getCurrentCluster()!.server);
  const options: Parameters<typeof request>[1] = {
    method,
    agent: false,
    headers: contentType ? { 'content-type': contentType } : {},
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

test(`${PROCESSES} requests at the same moment: the client-side way loses the race, server-side apply does not`, async () => {
  const clusterRoles = '/apis/rbac.authorization.k8s.io/v1/clusterroles';
  const [example] = readDeployDocs('job-clusterroles.yaml');
  const doc = (name: string) => ({ ...example!, metadata: { name } });
  const many = <T>(f: () => Promise<T>) => Promise.all(Array.from({ length: PROCESSES }, f));

  // Client-side apply: every process reads first (404: missing), then every one creates.
  const clientSide = uniqueName('race-client');
  created.push(clientSide);
  expect(await many(() => adminRequest('GET', `${clusterRoles}/${clientSide}`))).toEqual(
    Array.from({ length: PROCESSES }, () => 404),
  );
  const creates = await many(() => adminRequest('POST', clusterRoles, doc(clientSide), 'application/json'));
  expect(creates.sort()).toEqual([201, ...Array.from({ length: PROCESSES - 1 }, () => 409)]);

  // Server-side apply: one request creates or merges, so all succeed (201 for the creator, 200 else).
  const serverSide = uniqueName('race-ssa');
  created.push(serverSide);
  const applies = await many(() =>
    adminRequest(
      'PATCH',
      `${clusterRoles}/${serverSide}?fieldManager=k8s-ea-tests&force=true`,
      doc(serverSide),
      'application/apply-patch+yaml',
    ),
  );
  expect(applies.filter((status) => status !== 200 && status !== 201)).toEqual([]);
  expect(applies.filter((status) => status === 201)).toHaveLength(1);
});
