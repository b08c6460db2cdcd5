// Renewal through the kubeconfig's exec credential plugin, nothing faked: the built action bundles
// run as the runner runs them (credentials: exec), the REAL broker bundle over HTTPS, the REAL control
// plane, and the installed kubectl, which runs the plugin (dist/credential/index.js) itself.
// The clock is real: a 60 s grant with a 240 s session limit (4x its ttl) is used by kubectl for ~4.5 minutes.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { load } from 'js-yaml';
import type { RunningBroker } from '../../test/support/broker.js';
import { coreApi, kubectlAdmin, sleep, waitFor } from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { policyYaml } from '../../test/support/policy.js';
import { ensureActionBuilt, repoRoot, runChild, type RunnerJob } from '../../test/support/runner.js';

const GRANT_TTL = 60;
const SESSION = 240;
const PLUGIN = join(repoRoot, 'dist', 'credential', 'index.js');
const EXPIRES_AT = 'k8s-ephemeral-access.io/expires-at';

let env: BrokerEnv;
let broker: RunningBroker;

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({
    namespaces: ['renewal'],
    policy: {
      rules: [
        // The plugin renews without asking for a ttl: the first rule decides (60 s, 240 s session).
        { name: 'short', roles: ['deployer'], maxTtlSeconds: GRANT_TTL, maxSessionSeconds: SESSION },
        // A renewal asking for 900 s matches this one: longer than the token, so a new token is minted.
        { name: 'long', roles: ['deployer'], maxTtlSeconds: 900, maxSessionSeconds: 1000 },
        { name: 'fixed', roles: ['viewer'], maxTtlSeconds: 300 },
      ],
    },
  });
  broker = await env.startBroker();
}, 120_000);

afterAll(() => env?.cleanup());

interface Cache {
  grantId: string;
  token: string;
  expiresAt: string;
  grantedAt: string;
  sessionEndsAt?: string;
}

const readCache = (job: RunnerJob): Cache =>
  JSON.parse(readFileSync(job.state['credential-cache']!, 'utf8')) as Cache;

async function mainExec(job: RunnerJob, inputs: Record<string, string> = {}) {
  const main = await job.main(
    env.actionInputs(broker, { role: 'deployer', ttl: String(GRANT_TTL), credentials: 'exec', ...inputs }),
  );
  if (main.exitCode !== 0) throw new Error(`main failed: ${main.errors.join('; ')}\n${main.stderr}`);
  return main;
}

async function grantObject(grantId: string) {
  const sa = await coreApi().readNamespacedServiceAccount({ name: grantId, namespace: env.ns });
  return {
    expiresAt: Date.parse(sa.metadata!.annotations![EXPIRES_AT]!),
    createdAt: new Date(sa.metadata!.creationTimestamp!).getTime(),
  };
}

const recordExpiry = (grantId: string): number =>
  Date.parse(
    kubectlAdmin([
      '-n',
      env.rbac.brokerNamespace,
      'get',
      'lease',
      grantId,
      '-o',
      'jsonpath={.metadata.annotations.k8s-ephemeral-access\\.io/grant-expires-at}',
    ]),
  );

const renewals = (grantId: string) =>
  broker.audit().filter((a) => a.action === 'renewal' && a.grantId === grantId);
const denials = (grantId: string) =>
  broker.audit().filter((a) => a.action === 'denial' && a.grantId === grantId && a.request === 'renew');

const renew = (grantId: string, jwt: string | undefined, body: unknown) =>
  broker.request<Record<string, unknown>>('POST', `/v1/grants/${grantId}/renew`, { token: jwt, body });

/** Every file under `root` except those in `skip` (the grant's private directory) that contains `secret`. */
function filesContaining(root: string, secret: string, skip: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((p) => !p.startsWith(`${skip}/`) && readFileSync(p, 'utf8').includes(secret));
}

/** A copy of the cache in a private directory of its own, moved into the renewal window (or past the end). */
function cacheCopy(cache: Cache, expiresAt: number): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-cache-'));
  const path = join(dir, 'credential.json');
  const moved = {
    ...cache,
    expiresAt: new Date(expiresAt).toISOString(),
    grantedAt: new Date(expiresAt - 60_000).toISOString(),
  };
  writeFileSync(path, JSON.stringify(moved), { mode: 0o600 });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('credentials: exec renews the grant through the plugin', () => {
  test('kubectl keeps working for the whole session through renewals; past the session limit it fails with the plugin message', async () => {
    await env.withJob(async (job) => {
      const main = await mainExec(job);
      const grantId = main.outputs['grant-id']!;
      const kubeconfigPath = main.outputs.kubeconfig!;
      const dir = dirname(job.state['credential-cache']!);

      // The kubeconfig runs the plugin with the runner's node and holds no token; the token is in
      // the 0600 cache inside the 0700 private directory.
      const kubeconfig = readFileSync(kubeconfigPath, 'utf8');
      const user = (load(kubeconfig) as { users: { user: Record<string, unknown> }[] }).users[0]!.user;
      expect(user.token).toBeUndefined();
      expect(user.exec).toEqual({
        apiVersion: 'client.authentication.k8s.io/v1',
        command: process.execPath,
        args: [PLUGIN, job.state['credential-cache']],
        interactiveMode: 'Never',
        provideClusterInfo: false,
      });
      expect(lstatSync(job.state['credential-cache']!).mode & 0o777).toBe(0o600);
      expect(lstatSync(dir).mode & 0o777).toBe(0o700);
      const firstToken = readCache(job).token;
      expect(kubeconfig).not.toContain(firstToken);

      const { createdAt, expiresAt: firstEnd } = await grantObject(grantId);
      const sessionEnd = createdAt + SESSION * 1000;
      expect(firstEnd - createdAt).toBeLessThanOrEqual((GRANT_TTL + 1) * 1000);

      const calls: { at: number; code: number | null; stderr: string; stdout: string }[] = [];
      const ends: number[] = [firstEnd];
      // Every 10 s until 20 s past the session limit.
      while (Date.now() < sessionEnd + 20_000) {
        const r = await job.exec('kubectl', ['get', 'configmaps', '-o', 'name']);
        calls.push({ at: Date.now(), ...r });
        const sa = await grantObject(grantId).catch(() => undefined);
        if (sa) ends.push(sa.expiresAt);
        await sleep(10_000);
      }

      // Every call before the grant's last end worked, though the first end was ~60 s in.
      const during = calls.filter((c) => c.at < sessionEnd - 1_000);
      expect(during.length).toBeGreaterThanOrEqual(10);
      expect(during.filter((c) => c.code !== 0).map((c) => c.stderr)).toEqual([]);
      expect(during.some((c) => c.at > firstEnd + 5_000)).toBe(true);
      // Past it, kubectl fails with the plugin's own line, not a 401 from the API server.
      const after = calls.filter((c) => c.at > sessionEnd + 1_000);
      expect(after.length).toBeGreaterThanOrEqual(1);
      for (const c of after) {
        expect(c.code).not.toBe(0);
        expect(c.stderr).toContain(`k8s-ephemeral-access: grant ${grantId} ended at`);
        expect(c.stderr).toContain('session limit');
      }

      // The expiry moved forward, never backward, and never past the session limit.
      for (let i = 1; i < ends.length; i += 1) expect(ends[i]).toBeGreaterThanOrEqual(ends[i - 1]!);
      expect(Math.max(...ends)).toBe(sessionEnd);
      expect(Math.max(...ends)).toBeGreaterThan(firstEnd);

      // Each renewal is audited, with the old and new ends and the session limit.
      const audited = renewals(grantId);
      expect(audited.length).toBeGreaterThanOrEqual(2);
      for (const a of audited) {
        expect(Date.parse(a.expiresAt as string)).toBeGreaterThan(Date.parse(a.previousExpiresAt as string));
        expect(Date.parse(a.expiresAt as string)).toBeLessThanOrEqual(sessionEnd);
        expect(Date.parse(a.sessionEndsAt as string)).toBe(sessionEnd);
        expect(a).toMatchObject({
          namespace: env.ns,
          serviceAccount: grantId,
          policyRule: 'short',
          newToken: false,
        });
        expect((a.github as Record<string, unknown>).run_id).toBe(env.issuer.claims.run_id);
      }
      console.log(
        `renewal e2e: ${calls.length} kubectl calls, ${audited.length} renewals, ends ` +
          [...new Set(ends)].map((e) => `+${Math.round((e - createdAt) / 1000)}s`).join(' → '),
      );

      // Nothing secret printed by kubectl or the plugin, or written outside the private directory.
      const tokens = [firstToken, readCache(job).token];
      for (const c of calls) for (const t of tokens) expect(`${c.stdout}${c.stderr}`).not.toContain(t);
      for (const t of tokens) expect(filesContaining(job.root, t, dir)).toEqual([]);

      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(existsSync(dir)).toBe(false);
    });
  }, 420_000);

  test('the broker renews only with both proofs, for the same run and job, while a rule allows it', async () => {
    await env.withJob(async (job) => {
      const main = await mainExec(job);
      const grantId = main.outputs['grant-id']!;
      const cache = readCache(job);
      const { createdAt, expiresAt: firstEnd } = await grantObject(grantId);
      const sign = (claims = {}) => env.issuer.sign(claims);

      // Without the grant token, or with a JWT only: refused before anything else.
      const noToken = await renew(grantId, await sign(), {});
      expect(noToken.status).toBe(400);
      const noJwt = await renew(grantId, undefined, { grantToken: cache.token });
      expect(noJwt.status).toBe(401);
      // Another run's JWT, another job's JWT (same run, another check_run_id): refused.
      const otherRun = await renew(grantId, await sign({ run_id: '42' }), { grantToken: cache.token });
      expect(otherRun.status).toBe(403);
      const otherJob = await renew(grantId, await sign({ check_run_id: '43' }), { grantToken: cache.token });
      expect(otherJob.status).toBe(403);
      expect(denials(grantId).map((d) => d.reason)).toEqual([
        'invalid_request',
        'missing_bearer_token',
        'grant_of_another_run',
        'grant_of_another_job',
      ]);
      expect((await grantObject(grantId)).expiresAt).toBe(firstEnd);

      // The right run and job: renewed. Asked for 900 s, longer than the token's 600 s: a new token.
      const jwt = await sign();
      const ok = await renew(grantId, jwt, { grantToken: cache.token, ttlSeconds: 900 });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ grantId, newToken: true });
      expect(ok.body.token).not.toBe(cache.token);
      const renewedEnd = Date.parse(ok.body.expiresAt as string);
      expect(renewedEnd).toBeGreaterThan(Date.now() + 890_000);
      expect(Date.parse(ok.body.tokenExpiresAt as string)).toBeGreaterThanOrEqual(renewedEnd);
      expect(Date.parse(ok.body.sessionEndsAt as string)).toBe(createdAt + 1000 * 1000);
      expect((await grantObject(grantId)).expiresAt).toBe(renewedEnd);
      expect(recordExpiry(grantId)).toBe(renewedEnd);
      const [audit] = renewals(grantId);
      expect(audit).toMatchObject({ policyRule: 'long', newToken: true });
      expect(audit!.credentialId).toMatch(/^JTI=/);
      expect(JSON.stringify(broker.audit())).not.toContain(ok.body.token as string);
      // The new token is the same ServiceAccount's.
      const cfg = mkdtempSync(join(tmpdir(), 'k8s-ea-kc-'));
      try {
        const server = (
          load(readFileSync(main.outputs.kubeconfig!, 'utf8')) as {
            clusters: { cluster: Record<string, string> }[];
          }
        ).clusters[0]!.cluster;
        const whoami = await runChild('kubectl', [
          // Nothing from the environment's kubeconfig: a client certificate there would win over the token.
          '--kubeconfig=/dev/null',
          `--server=${server.server}`,
          `--certificate-authority=${writeCa(cfg, server['certificate-authority-data']!)}`,
          `--token=${ok.body.token as string}`,
          'auth',
          'whoami',
          '-o',
          'jsonpath={.status.userInfo.username}',
        ]);
        expect(whoami.stdout).toBe(`system:serviceaccount:${env.ns}:${grantId}`);
      } finally {
        rmSync(cfg, { recursive: true, force: true });
      }
      // A renewal JWT is spent like an exchange's.
      const again = await renew(grantId, jwt, { grantToken: ok.body.token });
      expect(again.status).toBe(401);
      expect(denials(grantId).at(-1)!.reason).toBe('jwt_replayed');
    });
  });

  test('a rule without maxSessionSeconds: renewal refused, the plugin keeps the token to its end', async () => {
    await env.withJob(async (job) => {
      const main = await mainExec(job, { role: 'viewer', ttl: '300' });
      const grantId = main.outputs['grant-id']!;
      const cache = readCache(job);
      const refused = await renew(grantId, await env.issuer.sign(), { grantToken: cache.token });
      expect(refused.status).toBe(403);
      expect(denials(grantId).map((d) => d.reason)).toEqual(['renewal_not_allowed']);

      // The plugin in the renewal window: warns once, records the refusal, hands out the token.
      const copy = cacheCopy(cache, Date.now() + 10_000);
      try {
        const jobEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: job.root, ...idTokenEnv() };
        const first = await runChild(process.execPath, [PLUGIN, copy.path], { env: jobEnv });
        expect(first.code).toBe(0);
        expect(first.stderr).toMatch(/^k8s-ephemeral-access: warning: could not renew grant .*HTTP 403/);
        expect(first.stderr).not.toContain(cache.token);
        const credential = JSON.parse(first.stdout) as {
          status: { token: string; expirationTimestamp: string };
        };
        expect(credential.status.token).toBe(cache.token);
        const second = await runChild(process.execPath, [PLUGIN, copy.path], { env: jobEnv });
        expect(second.code).toBe(0);
        expect(second.stderr).toBe('');
        // The plugin's refusal: a second denial line, read from the broker's pipe.
        const [earlier] = denials(grantId);
        await broker.auditLine(
          (l) => l.action === 'denial' && l.grantId === grantId && l.requestId !== earlier!.requestId,
        );
        expect(denials(grantId)).toHaveLength(2);
      } finally {
        copy.cleanup();
      }
      await job.post();
    });
  });

  test('outside a job, and after post, the plugin fails with one clear line and kubectl fails cleanly', async () => {
    await env.withJob(async (job) => {
      const main = await mainExec(job);
      const grantId = main.outputs['grant-id']!;
      const cache = readCache(job);

      // No ACTIONS_ID_TOKEN_REQUEST_*: nothing to renew with, and the token has ended.
      const ended = cacheCopy(cache, Date.now() - 1_000);
      try {
        const outside = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: job.root };
        const r = await runChild(process.execPath, [PLUGIN, ended.path], { env: outside });
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toContain(
          'ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set',
        );
        expect(r.stderr).not.toContain(cache.token);

        // A copy of the kubeconfig, kept past the job's end (the job's own is shredded by post).
        const keptKubeconfig = join(dirname(ended.path), 'kubeconfig');
        writeFileSync(keptKubeconfig, readFileSync(main.outputs.kubeconfig!), { mode: 0o600 });

        const post = await job.post();
        expect(post.exitCode).toBe(0);
        expect(existsSync(main.outputs.kubeconfig!)).toBe(false);

        // After post: the renewal is refused (the token no longer authenticates, or its grant is gone)...
        const afterPost = await runChild(process.execPath, [PLUGIN, ended.path], {
          env: { ...outside, ...idTokenEnv() },
        });
        expect(afterPost.code).toBe(1);
        expect(afterPost.stderr).toMatch(
          new RegExp(
            `^k8s-ephemeral-access: could not renew grant ${grantId}, which ended at .*broker refused the renewal.*HTTP 40[14]`,
          ),
        );
        expect(afterPost.stderr).not.toContain(cache.token);
        // ...and kubectl through the kept kubeconfig fails with the plugin's line: the cache is gone.
        const kubectl = await job.exec('kubectl', ['--kubeconfig', keptKubeconfig, 'get', 'configmaps']);
        expect(kubectl.code).not.toBe(0);
        expect(kubectl.stderr).toContain('k8s-ephemeral-access: credential cache');
        expect(kubectl.stderr).toContain('the grant was revoked');
      } finally {
        ended.cleanup();
      }
    });
  });
});

describe('credentials: exec and a policy change', () => {
  test('once the policy no longer grants the role, renewal is refused (role_not_allowed) and the grant keeps its end', async () => {
    await env.withJob(async (job) => {
      const main = await mainExec(job);
      const grantId = main.outputs['grant-id']!;
      const cache = readCache(job);
      const { expiresAt: firstEnd } = await grantObject(grantId);
      // The running broker's policy file, rewritten: only the viewer rule is left (hot reload).
      const policyFile = join(dirname(broker.configPath), 'policy.yaml');
      const before = readFileSync(policyFile, 'utf8');
      writeFileSync(
        policyFile,
        policyYaml({
          namespaces: [env.ns],
          rules: [{ name: 'fixed', roles: ['viewer'], maxTtlSeconds: 300 }],
        }),
      );
      try {
        await waitFor('the broker to reload its policy', async () =>
          broker.stderr.some((l) => l.includes('"msg":"policy reloaded"')) ? true : undefined,
        );
        const refused = await renew(grantId, await env.issuer.sign(), { grantToken: cache.token });
        expect(refused.status).toBe(403);
        const [denial] = denials(grantId);
        expect(denial!.reason).toBe('role_not_allowed');
        expect((await grantObject(grantId)).expiresAt).toBe(firstEnd);
        expect(recordExpiry(grantId)).toBe(firstEnd);
      } finally {
        writeFileSync(policyFile, before);
      }
      await job.post();
    });
  });
});

function idTokenEnv(): Record<string, string> {
  return {
    ACTIONS_ID_TOKEN_REQUEST_URL: env.issuer.idTokenRequestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: env.issuer.idTokenRequestToken,
  };
}

function writeCa(dir: string, base64: string): string {
  const path = join(dir, 'ca.crt');
  writeFileSync(path, Buffer.from(base64, 'base64'));
  return path;
}
