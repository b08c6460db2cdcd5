// Granted vs used in direct mode, nothing faked: the built action runs as the GitHub runner runs it
// against the real broker bundle, given the control plane's own audit log (`auditLog` in its
// config; the API server writes it in blocking mode). A later step's real kubectl makes a known set
// of calls straight to the API server (apply, get, list, watch, patch, delete on ConfigMaps, and
// one refused call); the post step's job summary lists exactly those under the rule that allowed
// them, the rules never used, the refused call, and what the rule's shadowRole would deny.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { auditLogPath } from '../../../test/support/cluster.js';
import type { RunningBroker } from '../../../test/support/broker.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import { ensureActionBuilt } from '../../../test/support/runner.js';

let env: BrokerEnv;
let broker: RunningBroker;

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({
    namespaces: ['usage-direct'],
    policy: {
      roles: {
        deployer: { clusterRole: 'k8s-ea-deployer' },
        'configmap-reader': {
          rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
        },
      },
      rules: [{ name: 'deploys', roles: ['deployer'], shadowRole: 'configmap-reader' }],
    },
  });
  broker = await env.startBroker({ config: { auditLog: { file: auditLogPath() } } });
}, 180_000);

afterAll(() => env?.cleanup());

/** The `verb name` of each call in one cell of the summary's rule table (`<br>`-separated). */
function callsIn(cell: string): string[] {
  return cell.split('<br>').map((c) => {
    const m = /^`(\w+)` [\w/]+(?: `([^`]+)`)?: \d+ calls?$/.exec(c.trim());
    if (!m) throw new Error(`not a call: ${c}`);
    return m[2] ? `${m[1]} ${m[2]}` : m[1]!;
  });
}

/** A section of the summary: the list items under the heading that starts with `heading`. */
function listUnder(summary: string, heading: string): string[] {
  const from = summary.indexOf(`\n${heading}`);
  if (from < 0) return [];
  const rest = summary
    .slice(from + 1)
    .split('\n')
    .slice(1);
  const end = rest.findIndex((l) => l.startsWith('#'));
  return (end < 0 ? rest : rest.slice(0, end)).filter((l) => l.startsWith('- '));
}

test("the post step's job summary lists the direct-mode calls from the API server's audit log", async () => {
  await env.withJob(async (job) => {
    const main = await job.main(env.actionInputs(broker, { role: 'deployer', ttl: '600' }));
    expect(main.exitCode).toBe(0);
    const kubectl = (...args: string[]) =>
      job.exec('kubectl', ['--cache-dir', join(job.root, 'kube-cache'), '--request-timeout=10s', ...args]);
    const manifest = join(job.workspace, 'cm.yaml');
    writeFileSync(
      manifest,
      dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app' }, data: { v: '1' } }),
    );
    const steps = [
      await kubectl('apply', '-f', manifest),
      await kubectl('get', 'configmap', 'app', '-o', 'name'),
      await kubectl('get', 'configmaps', '-o', 'name'),
      await kubectl('get', '--raw', `/api/v1/namespaces/${env.ns}/configmaps?watch=1&timeoutSeconds=1`),
      await kubectl('patch', 'configmap', 'app', '-p', '{"data":{"v":"2"}}'),
      await kubectl('delete', 'configmap', 'app', '--wait=false'),
    ];
    expect(steps.map((s) => [s.code, s.stderr])).toEqual(steps.map(() => [0, '']));
    const refused = await kubectl('get', 'secrets', '-o', 'name');
    expect([refused.code, /forbidden/i.test(refused.stderr)]).toEqual([1, true]);
    const kubeconfig = load(readFileSync(main.outputs.kubeconfig!, 'utf8')) as {
      users: { user: { token: string } }[];
    };
    const token = kubeconfig.users[0]!.user.token;

    const post = await job.post();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    const summary = post.summary;
    console.log(`direct-mode job summary:\n${summary}`);
    expect(summary).toMatch(/^## Kubernetes access used\n\n\d+ calls in the API server's audit log/);
    expect(summary).not.toContain('begins after');
    expect(summary).not.toContain(token);
    // deployer's four rules (deploy/job-clusterroles.yaml), in order; only the ConfigMap one was used.
    const rows = summary.split('\n').filter((l) => /^\| (\(core\)|apps) \|/.test(l));
    const cells = rows.map((r) => r.split(' | ').map((c) => c.replace(/^\| | \|$/g, '')));
    expect(cells.map((c) => [c[1], c[4] === '**never used**'])).toEqual([
      ['deployments, replicasets, statefulsets', true],
      ['configmaps, services', false],
      ['pods', true],
      ['pods/log, events', true],
    ]);
    // Exactly the calls made: kubectl apply reads first (404: RBAC allowed it), then creates (the
    // API server's Event names the object created, which the gateway's path does not).
    expect(callsIn(cells[1]![4]!).sort()).toEqual(
      ['get app', 'create app', 'list', 'watch', 'patch app', 'delete app'].sort(),
    );
    expect(summary).toContain('3 rules of 4 never used.');
    // The refused step: kubectl lists Secrets (403), then reads the namespace to explain (403 too).
    expect(listUnder(summary, '### Refused (403)').sort()).toEqual([
      `- \`get\` namespaces \`${env.ns}\`: 1 call`,
      '- `list` secrets: 1 call',
    ]);
    // Discovery is allowed to every authenticated user, by no rule of the role.
    expect(listUnder(summary, '### Allowed by no rule').map((l) => l.replace(/\d+ calls?$/, 'n'))).toEqual([
      '- `get` (non-resource URL): n',
    ]);
    // Shadow: the writes would be denied by the read-only shadow role.
    expect(summary).toContain('### Shadow role `configmap-reader`: 3 calls it would deny');
    expect(
      listUnder(summary, '### Shadow role')
        .map((l) => /^- `(\w+)`/.exec(l)![1])
        .sort(),
    ).toEqual(['create', 'delete', 'patch']);
  });
});

test('a broker given no audit log: the job summary says the calls are unavailable', async () => {
  const plain = await env.startBroker();
  await env.withJob(async (job) => {
    const main = await job.main(env.actionInputs(plain, { role: 'deployer', ttl: '600' }));
    expect(main.exitCode).toBe(0);
    expect((await job.exec('kubectl', ['get', 'configmaps', '-o', 'name'])).code).toBe(0);
    const post = await job.post();
    expect([post.exitCode, post.warnings]).toEqual([0, []]);
    expect(post.summary).toBe(
      "## Kubernetes access used\n\nUnavailable: in direct mode the calls are read from the API server's audit log, and this broker is given none (`auditLog` in its config).\n",
    );
  });
});
