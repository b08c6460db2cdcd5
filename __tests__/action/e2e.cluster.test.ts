// End to end, nothing faked: the built action bundles run as the GitHub runner runs them, against
// the REAL broker (build/broker/index.js over HTTPS, trusted through the `broker-ca` input) and the
// REAL control plane, with the installed kubectl using the exported KUBECONFIG as a later step would.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, relative } from 'node:path';
import { load } from 'js-yaml';
import { managedObjects } from '../../test/support/managed-objects.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { kubectlStatus, tokenKubeconfig, waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { NODE_RUNTIMES, nodeBinary } from '../../test/support/node-runtimes.js';
import { createJob, ensureActionBuilt, type RunnerJob, type StepResult } from '../../test/support/runner.js';

let env: BrokerEnv;
let broker: RunningBroker;

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({
    namespaces: ['action-e2e', 'action-e2e-b'],
    policy: { rules: [{ roles: ['deployer', 'viewer'] }] },
  });
  broker = await env.startBroker();
}, 120_000);

afterAll(() => env?.cleanup());

const inputs = (overrides: Record<string, string> = {}) =>
  env.actionInputs(broker, { role: 'deployer', ttl: '600', ...overrides });

/** The places a secret shows up other than the ::add-mask:: command that registers it. */
function leaks(step: StepResult, secret: string): string[] {
  const places: string[] = [];
  const stdout = step.stdout
    .split('\n')
    .filter((l) => l !== `::add-mask::${secret}`)
    .join('\n');
  if (stdout.includes(secret)) places.push('stdout');
  if (step.stderr.includes(secret)) places.push('stderr');
  for (const [name, text] of Object.entries(step.files)) if (text.includes(secret)) places.push(name);
  return places;
}

const tokenOf = (kubeconfigPath: string): string =>
  (load(readFileSync(kubeconfigPath, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user
    .token;

/** Waits until the API server rejects the token (its auth cache holds a deleted SA's token ~10 s). */
async function expectTokenRejected(token: string, namespace: string): Promise<void> {
  const kc = tokenKubeconfig(token, namespace);
  try {
    await waitFor(
      'the revoked token to be rejected with 401',
      () => {
        const r = kubectlStatus(kc.path, ['get', 'configmaps']);
        return r.status === 401 ? true : undefined;
      },
      30_000,
      500,
    );
  } finally {
    kc.cleanup();
  }
}

async function runMain(job: RunnerJob, overrides: Record<string, string> = {}) {
  const main = await job.main(inputs(overrides));
  if (main.exitCode !== 0) throw new Error(`main failed: ${main.errors.join('; ')}\n${main.stderr}`);
  return main;
}

describe('action end to end with the real broker and control plane', () => {
  test.each(NODE_RUNTIMES)(
    'on %s: main grants access kubectl can use within the role; post revokes it and shreds the file',
    async (runtime) => {
      await env.withJob(
        async (job) => {
          const main = await runMain(job);
          const path = main.outputs.kubeconfig!;
          const grantId = main.outputs['grant-id']!;
          expect(main.outputs.namespace).toBe(env.ns);
          expect(main.outputs['service-account']).toBe(`system:serviceaccount:${env.ns}:${grantId}`);
          expect(Date.parse(main.outputs['expires-at']!)).toBeGreaterThan(Date.now());
          expect(main.exportedEnv.KUBECONFIG).toBe(path);

          // The file: 0600, in a fresh 0700 directory under RUNNER_TEMP, outside the workspace.
          expect(lstatSync(path).mode & 0o777).toBe(0o600);
          expect(lstatSync(dirname(path)).mode & 0o777).toBe(0o700);
          expect(dirname(dirname(path))).toBe(job.runnerTemp);
          expect(relative(job.workspace, path).startsWith('..')).toBe(true);

          // A later step's kubectl, through the exported KUBECONFIG: allowed calls work...
          const allowed = await job.exec('kubectl', [
            'create',
            'configmap',
            `from-ci-${runtime}`,
            '--from-literal=a=b',
          ]);
          expect(allowed.stderr).toBe('');
          expect(allowed.code).toBe(0);
          const list = await job.exec('kubectl', ['get', 'configmaps', '-o', 'name']);
          expect(list.stdout).toContain(`configmap/from-ci-${runtime}`);
          const whoami = await job.exec('kubectl', [
            'auth',
            'whoami',
            '-o',
            'jsonpath={.status.userInfo.username}',
          ]);
          // The output names the identity the API server sees.
          expect(whoami.stdout).toBe(main.outputs['service-account']);
          // ...and everything outside the role is denied.
          for (const args of [
            ['get', 'secrets'],
            ['get', 'configmaps', '-n', 'default'],
            ['create', 'serviceaccount', 'sneaky'],
            ['get', 'namespaces'],
          ]) {
            const denied = await job.exec('kubectl', args);
            expect({ args, code: denied.code }).toEqual({ args, code: 1 });
            expect(denied.stderr).toMatch(/forbidden/i);
          }

          // Secrets appear nowhere except in their own mask commands: the Kubernetes token and the JWT.
          const token = tokenOf(path);
          expect(main.masks).toContain(token);
          const jwts = main.masks.filter((m) => m !== token);
          expect(jwts.length).toBeGreaterThan(0);
          for (const secret of [token, ...jwts]) expect(leaks(main, secret)).toEqual([]);

          const post = await job.post();
          expect(post.exitCode).toBe(0);
          expect(post.warnings).toEqual([]);
          expect(post.log).toContain(`Revoked grant ${grantId} through the broker.`);
          for (const secret of [token, ...jwts]) expect(leaks(post, secret)).toEqual([]);
          expect(existsSync(path)).toBe(false);
          expect(existsSync(dirname(path))).toBe(false);
          expect(managedObjects([env.ns]).filter((o) => o.includes(grantId))).toEqual([]);
          await expectTokenRejected(token, env.ns);
        },
        { node: await nodeBinary(runtime) },
      );
    },
  );

  test('two calls in one job: both contexts work in a later step, and each post revokes its own grant', async () => {
    await env.withJob(async (job) => {
      const [nsA, nsB] = env.namespaces as [string, string];
      const a = await runMain(job, { namespace: nsA, role: 'deployer' });
      const b = await runMain(job, { namespace: nsB, role: 'viewer' });
      expect([a.outputs.context, b.outputs.context]).toEqual([`deployer@${nsA}`, `viewer@${nsB}`]);
      const [pathA, pathB] = [a.outputs.kubeconfig!, b.outputs.kubeconfig!];
      expect(pathA).not.toBe(pathB);
      // The later call's file first (its context is the current one), the earlier one kept.
      expect(job.exportedEnv.KUBECONFIG).toBe(`${pathB}${delimiter}${pathA}`);
      expect(job.exportedEnv.KUBE_CONFIG_PATH).toBe(pathB);

      const contexts = await job.exec('kubectl', ['config', 'get-contexts', '-o', 'name']);
      expect(contexts.stdout.split('\n').filter(Boolean).sort()).toEqual(
        [`deployer@${nsA}`, `viewer@${nsB}`].sort(),
      );
      const current = await job.exec('kubectl', ['config', 'current-context']);
      expect(current.stdout.trim()).toBe(`viewer@${nsB}`);
      // Each context acts in its own namespace with its own role.
      const created = await job.exec('kubectl', [
        '--context',
        `deployer@${nsA}`,
        'create',
        'configmap',
        'two-calls',
        '--from-literal=a=b',
      ]);
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
      const viewed = await job.exec('kubectl', [
        '--context',
        `viewer@${nsB}`,
        'get',
        'configmaps',
        '-o',
        'name',
      ]);
      expect(viewed.code).toBe(0);
      const viewerWrite = await job.exec('kubectl', [
        '--context',
        `viewer@${nsB}`,
        'create',
        'configmap',
        'not-allowed',
        '--from-literal=a=b',
      ]);
      expect(viewerWrite.stderr).toMatch(/forbidden/i);
      const whoamiA = await job.exec('kubectl', [
        '--context',
        `deployer@${nsA}`,
        'auth',
        'whoami',
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      expect(whoamiA.stdout).toBe(a.outputs['service-account']);

      const [tokenA, tokenB] = [tokenOf(pathA), tokenOf(pathB)];
      // The runner runs posts in reverse order, each with its own use's state.
      const postB = await job.post(b.savedState);
      const postA = await job.post(a.savedState);
      expect(postB.log).toContain(`Revoked grant ${b.outputs['grant-id']} through the broker.`);
      expect(postA.log).toContain(`Revoked grant ${a.outputs['grant-id']} through the broker.`);
      expect([...postA.warnings, ...postB.warnings]).toEqual([]);
      expect([existsSync(pathA), existsSync(pathB)]).toEqual([false, false]);
      await expectTokenRejected(tokenA, nsA);
      await expectTokenRejected(tokenB, nsB);
    });
  });

  test('main without id-token permission fails with the fix and creates nothing', async () => {
    const job = createJob({});
    try {
      const main = await job.main(inputs());
      expect(main.exitCode).toBe(1);
      expect(main.errors).toEqual([expect.stringContaining('Add `permissions: id-token: write`')]);
      expect(readdirSync(job.runnerTemp)).toEqual([]);
      expect(main.outputs).toEqual({});
    } finally {
      job.cleanup();
    }
  });

  test('a request the policy does not allow fails main with the broker reason and leaves no file', async () => {
    await env.withJob(async (job) => {
      const main = await job.main(inputs({ role: 'cluster-admin' }));
      expect(main.exitCode).toBe(1);
      expect(main.errors[0]).toMatch(
        /broker refused the exchange: .+ \(ERR_FORBIDDEN, HTTP 403, request id [^)]+\)/,
      );
      expect(readdirSync(job.runnerTemp)).toEqual([]);
      expect(main.outputs).toEqual({});
      expect(main.exportedEnv).toEqual({});
      // What the author needs without the broker's log: the claims presented, and what to check.
      expect(main.log).toContain('The GitHub OIDC token this job presented');
      expect(main.log).toContain(
        `repository: ${env.issuer.claims.repository} (repository_id ${env.issuer.claims.repository_id})`,
      );
      expect(main.errors[0]).toContain('Fix: no policy rule allows these claims');
      const jwts = main.masks;
      expect(jwts.length).toBeGreaterThan(0);
      for (const jwt of jwts) expect(leaks(main, jwt)).toEqual([]);
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.warnings).toEqual([]);
    });
  });

  test('a broker with explainRefusals: the reason code and the allowed ttl, still no secret', async () => {
    const explaining = await env.startBroker({ config: { explainRefusals: true } });
    await env.withJob(async (job) => {
      const main = await job.main(env.actionInputs(explaining, { role: 'deployer', ttl: '21600' }));
      expect(main.exitCode).toBe(1);
      expect(main.errors[0]).toMatch(
        /\(ERR_FORBIDDEN, ttl_exceeds_rule, HTTP 403, request id [^)]+\)\. Fix: ask for ttl ≤ \d+ seconds/,
      );
      expect(main.log).toContain('The GitHub OIDC token this job presented');
      for (const jwt of main.masks) expect(leaks(main, jwt)).toEqual([]);
      const other = await job.main(env.actionInputs(explaining, { role: 'cluster-admin' }));
      expect(other.errors[0]).toContain('role_not_allowed');
      expect(other.errors[0]).toContain('Fix: rules allow this namespace, but not this role');
    });
    await explaining.stop();
  });

  // Last: it stops the shared broker.
  test('post with the broker down revokes directly at the API server and still shreds', async () => {
    await env.withJob(async (job) => {
      const main = await runMain(job);
      const path = main.outputs.kubeconfig!;
      const grantId = main.outputs['grant-id']!;
      const token = tokenOf(path);
      expect(managedObjects([env.ns]).some((o) => o.endsWith(`/ServiceAccount/${grantId}`))).toBe(true);

      await broker.stop();
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.warnings).toEqual([]);
      expect(post.log).toContain(`revoking grant ${grantId} directly at the API server`);
      expect(post.log).toContain(`Revoked grant ${grantId} directly`);
      expect(leaks(post, token)).toEqual([]);
      expect(existsSync(path)).toBe(false);
      expect(existsSync(dirname(path))).toBe(false);
      await waitFor('the grant objects to be gone', () =>
        managedObjects([env.ns]).some((o) => o.includes(grantId)) ? undefined : true,
      );
      await expectTokenRejected(token, env.ns);
    });
  });
});
