// The built bundles run exactly as the GitHub runner runs them (test/support/runner.ts), with the
// real core.getIDToken against the local OIDC issuer and a stub broker that checks the JWT. This
// covers what only the real entry points show: input/env plumbing, file commands, masking on
// stdout, state handed to post, and the bundle staying small and free of the Kubernetes client.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startOidcIssuer, type OidcIssuer } from '../../test/support/oidc-issuer.js';
import { NODE_RUNTIMES, nodeBinary } from '../../test/support/node-runtimes.js';
import { createJob, ensureActionBuilt, repoRoot, type StepResult } from '../../test/support/runner.js';
import { exchangeResponse } from './support/fakes.js';

const TOKEN = `stub-k8s-token-${Math.random().toString(36).slice(2)}-SECRET`;

let issuer: OidcIssuer;
let broker: Server;
let brokerUrl: string;
let mode: 'grant' | 'forbid' = 'grant';
const seen: { method: string; url: string; auth: string; body: string; aud?: unknown }[] = [];

beforeAll(async () => {
  await ensureActionBuilt();
  issuer = await startOidcIssuer();
  broker = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      void (async () => {
        const auth = req.headers.authorization ?? '';
        const entry: (typeof seen)[number] = { method: req.method!, url: req.url!, auth, body };
        seen.push(entry);
        const send = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(payload));
        };
        if (req.method === 'POST' && req.url === '/v1/exchange') {
          const jwt = auth.replace(/^Bearer /, '');
          const { payload } = await jwtVerify(jwt, createLocalJWKSet({ keys: [issuer.publicJwk] }), {
            issuer: issuer.issuer,
          });
          entry.aud = payload.aud;
          if (mode === 'forbid')
            return send(403, {
              error: {
                code: 'ERR_FORBIDDEN',
                message: 'not allowed by the broker policy',
                requestId: 'stub-req-1',
              },
            });
          return send(200, exchangeResponse({ token: TOKEN }));
        }
        if (req.method === 'DELETE' && req.url === '/v1/grants/gha-1234-abcd')
          return send(200, { grantId: 'gha-1234-abcd', revoked: true });
        send(404, { error: { code: 'ERR_NOT_FOUND', message: 'not found' } });
      })().catch(() => {
        res.writeHead(401);
        res.end();
      });
    });
  });
  await new Promise<void>((r) => broker.listen(0, '127.0.0.1', r));
  brokerUrl = `http://127.0.0.1:${(broker.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await issuer?.close();
  await new Promise<void>((r) => broker?.close(() => r()));
});

const inputs = () => ({
  'broker-url': brokerUrl,
  namespace: 'team-a',
  role: 'deployer',
  audience: 'stub-aud',
});
const idToken = () => ({ url: issuer.idTokenRequestUrl, token: issuer.idTokenRequestToken });

/** Where a secret may appear in a step's output: only in the ::add-mask:: command itself. */
function leaks(step: StepResult, secret: string): string[] {
  const places: string[] = [];
  const stdoutWithoutMasks = step.stdout
    .split('\n')
    .filter((l) => l !== `::add-mask::${secret}`)
    .join('\n');
  if (stdoutWithoutMasks.includes(secret)) places.push('stdout');
  if (step.stderr.includes(secret)) places.push('stderr');
  for (const [name, text] of Object.entries(step.files)) if (text.includes(secret)) places.push(name);
  return places;
}

describe('bundles as the runner runs them', () => {
  test('the bundles stay small and never load the Kubernetes client', () => {
    const main = readFileSync(join(repoRoot, 'dist/main/index.js'), 'utf8');
    expect(main).not.toMatch(/RbacAuthorizationV1Api|@kubernetes\/client-node/);
    // @actions/github's run context is in, its Octokit client is not.
    expect(main).toContain('GITHUB_GRAPHQL_URL');
    expect(main).not.toMatch(/octokit/i);
    const post = readFileSync(join(repoRoot, 'dist/post/index.js'), 'utf8');
    expect(post).not.toMatch(/RbacAuthorizationV1Api|@kubernetes\/client-node/);
    // The direct-revoke fallback is inside the post bundle, as two plain DELETEs.
    expect(post).toContain('/apis/rbac.authorization.k8s.io/v1/namespaces/');
    const files = readdirSync(join(repoRoot, 'dist'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    expect(files.map((f) => f.slice(repoRoot.length + 1)).sort()).toEqual([
      'dist/credential/index.js',
      'dist/main/index.js',
      'dist/post/index.js',
    ]);
    // kubectl runs the credential plugin on every call: no toolkit, no Kubernetes client, small.
    const plugin = readFileSync(join(repoRoot, 'dist/credential/index.js'), 'utf8');
    expect(plugin).not.toMatch(/RbacAuthorizationV1Api|@kubernetes\/client-node|@actions\/core|octokit/i);
    expect(plugin.length).toBeLessThan(40_000);
    const total = files.reduce((sum, f) => sum + statSync(f).size, 0);
    expect(total).toBeLessThan(1_000_000);
  });

  test.each(NODE_RUNTIMES)(
    'on %s: main then post: outputs, exported KUBECONFIG, masked secrets, revoke, shred',
    async (runtime) => {
      mode = 'grant';
      const job = createJob({ idToken: idToken(), node: await nodeBinary(runtime) });
      try {
        seen.length = 0;
        const main = await job.main(inputs());
        expect(main.errors).toEqual([]);
        expect(main.exitCode).toBe(0);
        const path = main.outputs.kubeconfig!;
        expect(main.outputs).toMatchObject({
          context: 'deployer@team-a',
          namespace: 'team-a',
          'grant-id': 'gha-1234-abcd',
          'service-account': 'system:serviceaccount:team-a:gha-1234-abcd',
          'expires-at': '2030-01-01T00:15:00Z',
        });
        expect(main.exportedEnv).toEqual({ KUBECONFIG: path, KUBE_CONFIG_PATH: path });
        expect(dirname(dirname(path))).toBe(job.runnerTemp);
        expect(lstatSync(path).mode & 0o777).toBe(0o600);
        expect(lstatSync(dirname(path)).mode & 0o777).toBe(0o700);
        expect(main.summary).toContain('Kubernetes access granted');

        // The real getIDToken asked the issuer for the configured audience; the broker verified it.
        const exchange = seen.find((s) => s.method === 'POST')!;
        expect(exchange.aud).toBe('stub-aud');
        const jwt = exchange.auth.replace(/^Bearer /, '');
        expect(main.masks).toEqual(expect.arrayContaining([jwt, TOKEN]));
        expect(leaks(main, TOKEN)).toEqual([]);
        expect(leaks(main, jwt)).toEqual([]);

        const post = await job.post();
        expect(post.exitCode).toBe(0);
        expect(post.warnings).toEqual([]);
        const del = seen.find((s) => s.method === 'DELETE')!;
        expect(del.auth).toBe(`Bearer ${TOKEN}`);
        expect(existsSync(path)).toBe(false);
        expect(existsSync(dirname(path))).toBe(false);
        expect(leaks(post, TOKEN)).toEqual([]);
        expect(post.log).toContain('Revoked grant gha-1234-abcd through the broker.');
      } finally {
        job.cleanup();
      }
    },
  );

  test('without id-token permission main fails at once with the fix; post has nothing to do', async () => {
    const job = createJob({});
    try {
      seen.length = 0;
      const main = await job.main(inputs());
      expect(main.exitCode).toBe(1);
      expect(main.errors).toEqual([expect.stringContaining('Add `permissions: id-token: write`')]);
      expect(seen).toEqual([]);
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.log).toMatch(/^Nothing to clean up/);
    } finally {
      job.cleanup();
    }
  });

  test('a pull request from a fork is refused before any token request', async () => {
    const job = createJob({
      idToken: idToken(),
      eventName: 'pull_request_target',
      eventPayload: {
        pull_request: {
          head: { repo: { fork: true, full_name: 'mallory/octo-repo' } },
          base: { repo: { full_name: 'octo-org/octo-repo' } },
        },
      },
    });
    try {
      seen.length = 0;
      const main = await job.main(inputs());
      expect(main.exitCode).toBe(1);
      expect(main.errors[0]).toMatch(/pull request from the fork mallory\/octo-repo/);
      expect(seen).toEqual([]);
    } finally {
      job.cleanup();
    }
  });

  test('a broker refusal fails main with the reason and leaves no file', async () => {
    mode = 'forbid';
    const job = createJob({ idToken: idToken() });
    try {
      const main = await job.main(inputs());
      expect(main.exitCode).toBe(1);
      expect(main.errors[0]).toMatch(
        /broker refused the exchange: not allowed by the broker policy \(ERR_FORBIDDEN, HTTP 403, request id stub-req-1\)/,
      );
      expect(main.outputs).toEqual({});
      expect(main.exportedEnv).toEqual({});
      expect(readdirSync(job.runnerTemp)).toEqual([]);
    } finally {
      mode = 'grant';
      job.cleanup();
    }
  });

  test('post without main is harmless', async () => {
    const job = createJob({ idToken: idToken() });
    try {
      const post = await job.post();
      expect(post.exitCode).toBe(0);
      expect(post.log).toMatch(/^Nothing to clean up/);
    } finally {
      job.cleanup();
    }
  });
});
