// Gateway mode end to end, nothing faked: the built action bundles run as the runner runs them
// against the built broker with its gateway on, and the real kubectl uses the kubeconfig the action
// wrote. Everything kubectl does goes through the gateway; the API server's address is nowhere in
// what the job received, and the job's token is refused there (401); after post the gateway answers
// 401 and the open watch is closed.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import type { RunningBroker } from '../../test/support/broker.js';
import {
  clusterEndpoint,
  kubectlAdmin,
  kubectlStatus,
  readAudit,
  tokenKubeconfig,
  waitFor,
} from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { ensureActionBuilt, type RunnerJob } from '../../test/support/runner.js';
import { gatewayRequest } from './support/gateway-client.js';
import { ensureHelm, HELM_COMMAND } from '../../test/support/helm.js';

let env: BrokerEnv;
let broker: RunningBroker;
let dir: string;

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({ namespaces: ['gateway-e2e'], policy: { rules: [{ roles: ['deployer'] }] } });
  broker = await env.startBroker({ gateway: true });
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-gw-e2e-'));
  // A pod the deployer role may read, "running" as far as kubectl can tell, so kubectl gets as far as
  // the upgrade for exec and port-forward (the gateway refuses them there). A scheduling gate keeps it
  // off any node, with or without the test cluster's node: no kubelet ever reports its real (Pending)
  // phase over the patched one, and no container runs.
  kubectlAdmin(
    ['-n', env.ns, 'create', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'target' },
      spec: {
        schedulingGates: [{ name: 'k8s-ea.test/never-scheduled' }],
        containers: [{ name: 'target', image: 'busybox' }],
      },
    }),
  );
  kubectlAdmin([
    'patch',
    'pod',
    'target',
    '-n',
    env.ns,
    '--subresource=status',
    '--type=merge',
    '-p',
    '{"status":{"phase":"Running"}}',
  ]);
}, 180_000);

afterAll(async () => {
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A Deployment (no replicas) whose manifest is over 1 MiB: a dozen 100 kB environment values. */
function bigDeployment(name: string): string {
  const env = Array.from({ length: 12 }, (_, i) => ({ name: `BLOB_${i}`, value: 'x'.repeat(100_000) }));
  return dump({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 0,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'busybox', env }] },
      },
    },
  });
}

/** `kubectl get configmaps -w` in the background, as a later step would start it. */
function startWatch(job: RunnerJob) {
  const child = spawn('kubectl', ['get', 'configmaps', '-w', '-o', 'name'], {
    env: { PATH: process.env.PATH ?? '', HOME: dir, KUBECONFIG: job.exportedEnv.KUBECONFIG! },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((r) =>
    child.on('exit', (code) => r({ code, at: Date.now() })),
  );
  return { child, exited, output: () => stdout, errors: () => stderr };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

describe('gateway mode with the action and kubectl', () => {
  test('kubectl works through the gateway; exec and port-forward are refused; post ends it at once', async () => {
    await env.withJob(async (job) => {
      const main = await job.main(env.actionInputs(broker, { role: 'deployer', ttl: '600' }));
      expect(main.errors).toEqual([]);
      const grantId = main.outputs['grant-id']!;
      const kubeconfigText = readFileSync(main.outputs.kubeconfig!, 'utf8');
      const kubeconfig = load(kubeconfigText) as { clusters: { cluster: { server: string } }[] };
      expect(kubeconfig.clusters[0]!.cluster.server).toBe(broker.gatewayUrl);
      const apiServer = new URL(clusterEndpoint().server);
      expect(kubeconfigText).not.toContain(apiServer.host);
      expect(main.stdout).not.toContain(apiServer.host);
      // The job's token is the gateway's only: kubectl straight at the API server gets 401.
      const jobToken = (load(kubeconfigText) as { users: { user: { token: string } }[] }).users[0]!.user
        .token;
      const direct = tokenKubeconfig(jobToken, env.ns);
      try {
        expect(kubectlStatus(direct.path, ['get', 'configmaps'])).toMatchObject({ ok: false, status: 401 });
      } finally {
        direct.cleanup();
      }

      const run = (args: string[]) => job.exec('kubectl', args);
      const watch = startWatch(job);
      try {
        expect((await run(['create', 'configmap', 'through-gateway', '--from-literal=a=b'])).code).toBe(0);
        expect((await run(['get', 'configmaps', '-o', 'name'])).stdout).toContain(
          'configmap/through-gateway',
        );
        const small = join(dir, 'small.yaml');
        writeFileSync(
          small,
          dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied' }, data: { k: 'v1' } }),
        );
        const applied = await run(['apply', '-f', small]);
        expect(applied.stderr).toBe('');
        expect(applied.code).toBe(0);
        const big = join(dir, 'big.yaml');
        writeFileSync(big, bigDeployment('big'));
        expect(readFileSync(big).length).toBeGreaterThan(1_048_576);
        const ssa = await run(['apply', '--server-side', '-f', big]);
        expect(ssa.stderr).toBe('');
        expect(ssa.stdout).toContain('deployment.apps/big serverside-applied');
        const stored = kubectlAdmin([
          'get',
          'deployment',
          'big',
          '-n',
          env.ns,
          '-o',
          'jsonpath={.spec.template.spec.containers[0].env[11].value}',
        ]);
        expect(stored.length).toBe(100_000);
        // The watch sees what happens after it started, through the gateway.
        expect((await run(['create', 'configmap', 'watched'])).code).toBe(0);
        await waitFor('the watch to report the new ConfigMap', () =>
          watch.output().includes('configmap/watched') ? true : undefined,
        );
        const waited = await run(['wait', '--for=create', 'configmap/watched', '--timeout=20s']);
        expect(waited.code).toBe(0);

        const exec = await run(['exec', 'target', '--', 'true']);
        expect(exec.code).not.toBe(0);
        expect(exec.stderr).toContain('does not allow exec, attach, port-forward or cp');
        const forward = await run(['port-forward', 'pod/target', '18080:80']);
        expect(forward.code).not.toBe(0);
        expect(forward.stderr).toContain('does not allow exec, attach, port-forward or cp');

        const postedAt = Date.now();
        const post = await job.post();
        expect(post.exitCode).toBe(0);
        expect(post.log).toContain(`Revoked grant ${grantId} through the broker.`);
        const token = (load(kubeconfigText) as { users: { user: { token: string } }[] }).users[0]!.user.token;
        const latencies: number[] = [];
        for (let i = 0; i < 9; i += 1) {
          const started = Date.now();
          const r = await gatewayRequest(
            broker.gatewayUrl!,
            broker.ca!,
            'GET',
            `/api/v1/namespaces/${env.ns}/configmaps`,
            {
              token,
            },
          );
          latencies.push(Date.now() - started);
          expect(r.status).toBe(401);
        }
        const closed = await watch.exited;
        console.log(
          `gateway after post: 401 in p50 ${median(latencies)} ms (${latencies.join(', ')}); ` +
            `open watch closed ${closed.at - postedAt} ms after post began`,
        );
        expect(median(latencies)).toBeLessThan(1_000);
        expect(closed.at - postedAt).toBeLessThan(10_000);

        // Each call kubectl made through the gateway is one audit line with the run, and one
        // request in the API server's own audit log (joined by its audit id), and nothing else.
        await broker.auditLine((l) => l.action === 'gateway' && l.grantId === grantId && l.verb === 'watch');
        const lines = broker.audit().filter((l) => l.action === 'gateway' && l.grantId === grantId);
        const ids = lines.map((l) => l.apiAuditId as string);
        expect(new Set(ids).size).toBe(ids.length);
        for (const l of lines)
          expect(l).toMatchObject({
            github: {
              repository: 'octo-org/octo-repo',
              workflow: 'deploy',
              actor: 'octocat',
              ref: 'refs/heads/main',
            },
          });
        const user = `system:serviceaccount:${env.ns}:${grantId}`;
        // The API server logs a cut watch's completion once it notices the connection is gone.
        const serverIds = await waitFor(
          'the API server audit log to match',
          () => {
            const found = readAudit()
              .filter((e) => e.user.username === user && e.stage === 'ResponseComplete')
              .map((e) => e.auditID)
              .sort();
            return JSON.stringify(found) === JSON.stringify([...ids].sort()) ? found : undefined;
          },
          15_000,
          250,
        ).catch(() =>
          readAudit()
            .filter((e) => e.user.username === user && e.stage === 'ResponseComplete')
            .map((e) => e.auditID)
            .sort(),
        );
        expect(serverIds).toEqual([...ids].sort());
        const verbs = new Set(lines.map((l) => l.verb));
        for (const v of ['create', 'list', 'get', 'patch', 'watch']) expect(verbs).toContain(v);
        expect(JSON.stringify(broker.audit())).not.toContain(token);
      } finally {
        watch.child.kill();
      }
    });
  });
  test('a real Helm client installs, upgrades, lists and uninstalls a release through the gateway', async () => {
    ensureHelm();
    const chart = join(dir, 'tiny-chart');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), dump({ apiVersion: 'v2', name: 'tiny', version: '0.1.0' }));
    writeFileSync(join(chart, 'values.yaml'), 'value: one\n');
    writeFileSync(
      join(chart, 'templates', 'configmap.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny-{{ .Release.Name }}\ndata:\n  value: {{ .Values.value | quote }}\n',
    );
    await env.withJob(async (job) => {
      const main = await job.main(env.actionInputs(broker, { role: 'deployer', ttl: '600' }));
      expect(main.errors).toEqual([]);
      const grantId = main.outputs['grant-id']!;
      // Release records in ConfigMaps: grants never get Secrets (examples/helm-deploy.yml).
      const helmInJob = (args: string[]) =>
        job.exec('env', ['HELM_DRIVER=configmap', ...HELM_COMMAND, ...args, '--namespace', env.ns]);

      const installed = await helmInJob(['upgrade', '--install', 'web', chart]);
      expect(installed.stderr).toBe('');
      expect(installed.code).toBe(0);
      const upgraded = await helmInJob(['upgrade', 'web', chart, '--set', 'value=two']);
      expect(upgraded.stderr).toBe('');
      expect(upgraded.code).toBe(0);
      expect(
        kubectlAdmin(['get', 'configmap', 'tiny-web', '-n', env.ns, '-o', 'jsonpath={.data.value}']),
      ).toBe('two');
      const listed = await helmInJob(['list', '--output', 'json']);
      expect(listed.code).toBe(0);
      const releases = JSON.parse(listed.stdout) as {
        name: string;
        revision: string | number;
        status: string;
      }[];
      expect(releases.map((r) => [r.name, String(r.revision), r.status])).toEqual([['web', '2', 'deployed']]);
      expect((await helmInJob(['uninstall', 'web'])).code).toBe(0);
      // Helm's calls are the gateway's: each one an audit line of this grant, written when the call closes
      // (so perhaps after Helm exited).
      await broker.auditLine((l) => l.action === 'gateway' && l.grantId === grantId && l.verb === 'delete');
      const verbs = new Set(
        broker
          .audit()
          .filter((l) => l.action === 'gateway' && l.grantId === grantId)
          .map((l) => l.verb),
      );
      for (const v of ['create', 'update', 'list', 'delete']) expect(verbs).toContain(v);

      // Post shreds the kubeconfig; a copy kept by a misbehaving step still gets nowhere.
      const kept = join(dir, 'kept-kubeconfig.yaml');
      writeFileSync(kept, readFileSync(main.outputs.kubeconfig!), { mode: 0o600 });
      expect((await job.post()).exitCode).toBe(0);
      const after = await helmInJob(['list', '--kubeconfig', kept]);
      expect(after.code).not.toBe(0);
      // client-go's words for a 401.
      expect(after.stderr).toContain('the server has asked for the client to provide credentials');
    });
  }, 300_000);
});
