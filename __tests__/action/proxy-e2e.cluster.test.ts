// The action behind a real forward proxy (tinyproxy), as on a self-hosted runner with HTTPS_PROXY:
// the built bundles ask the token service and the REAL broker through CONNECT tunnels (the proxy's
// own log shows them), NO_PROXY sends them direct, and a dead proxy fails the step with a message
// that names the proxy but not the credentials in its URL; with credentials: exec, the credential
// plugin's renewal (run by kubectl) goes the same way. The action never proxies loopback, so
// the token service and the broker listen on a non-loopback address of this machine.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeTransport, NetworkError } from '../../src/action/http-transport.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { freePort } from '../../test/support/free-port.js';
import { ensureActionBuilt, type RunnerJob } from '../../test/support/runner.js';
import { selfSignedCert } from '../../test/support/tls.js';
import { nonLoopbackIPv4, startTinyproxy, type ForwardProxy } from './support/forward-proxy.js';

let env: BrokerEnv;
let broker: RunningBroker;
let proxy: ForwardProxy;
let tokenService: Server;
let tokenUrl: string;
let lan: string;
let certDir: string;
let tokenServiceCa: string;

const RUNTIME_TOKEN = 'runner-runtime-token';

beforeAll(async () => {
  lan = nonLoopbackIPv4();
  proxy = await startTinyproxy();
  await ensureActionBuilt();
  env = await startBrokerEnv({
    namespaces: ['action-proxy'],
    // A session limit, so that credentials: exec may renew.
    policy: { rules: [{ roles: ['deployer'], maxSessionSeconds: 1800 }] },
  });
  broker = await env.startBroker({ host: lan });
  // The runner's token service, on the non-loopback address over https like GitHub's. The job
  // trusts its certificate through NODE_EXTRA_CA_CERTS, as runners behind TLS-inspecting proxies do.
  certDir = mkdtempSync(join(tmpdir(), 'k8s-ea-token-service-'));
  const cert = selfSignedCert(certDir, lan);
  tokenServiceCa = cert.certFile;
  tokenService = createServer(
    { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://token-service');
      if (url.pathname !== '/_apis/token' || req.headers.authorization !== `Bearer ${RUNTIME_TOKEN}`) {
        res.writeHead(401).end();
        return;
      }
      void env.issuer.sign({}, { audience: url.searchParams.get('audience') ?? '' }).then((value) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value }));
      });
    },
  );
  await new Promise<void>((r) => tokenService.listen(0, lan, r));
  tokenUrl = `https://${lan}:${(tokenService.address() as AddressInfo).port}/_apis/token?api-version=2.0`;
}, 120_000);

afterAll(async () => {
  await new Promise((r) => tokenService?.close(r));
  await env?.cleanup();
  await proxy?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

const hostPort = (url: string) => new URL(url).host;

function jobEnv(extra: Record<string, string>) {
  return {
    idToken: { url: tokenUrl, token: RUNTIME_TOKEN },
    env: { NODE_EXTRA_CA_CERTS: tokenServiceCa, ...extra },
  };
}

const inputs = () => env.actionInputs(broker, { role: 'deployer', ttl: '600' });

async function mainAndPost(job: RunnerJob) {
  const main = await job.main(inputs());
  const post = await job.post();
  return { main, post };
}

describe('the action behind a forward proxy (tinyproxy)', () => {
  test('the OIDC request, the exchange and the revocation go through the proxy as CONNECT tunnels', async () => {
    const before = proxy.connects().length;
    const { main, post } = await env.withJob(mainAndPost, jobEnv({ HTTPS_PROXY: proxy.url }));
    expect({ exit: main.exitCode, errors: main.errors }).toEqual({ exit: 0, errors: [] });
    expect(post.warnings).toEqual([]);
    expect(post.log).toContain(`Revoked grant ${main.outputs['grant-id']} through the broker.`);
    const tunnels = proxy.connects().slice(before);
    // Main: one token request and one exchange; post: one revocation.
    expect(tunnels).toEqual([hostPort(tokenUrl), hostPort(broker.url), hostPort(broker.url)]);
  }, 120_000);

  test('NO_PROXY with the address sends the calls direct', async () => {
    const before = proxy.connects().length;
    const { main, post } = await env.withJob(
      mainAndPost,
      jobEnv({ HTTPS_PROXY: proxy.url, NO_PROXY: `example.invalid,${lan}` }),
    );
    expect({ exit: main.exitCode, errors: main.errors }).toEqual({ exit: 0, errors: [] });
    expect(post.log).toContain('through the broker');
    expect(proxy.connects().slice(before)).toEqual([]);
  }, 120_000);

  test('NO_PROXY with a CIDR range and a port sends the calls direct', async () => {
    const before = proxy.connects().length;
    const first = lan.split('.')[0]!;
    const main = await env.withJob(
      (job) => job.main(inputs()),
      jobEnv({
        https_proxy: proxy.url,
        no_proxy: `${first}.0.0.0/8:${new URL(tokenUrl).port},${lan}:${new URL(broker.url).port}`,
      }),
    );
    expect({ exit: main.exitCode, errors: main.errors }).toEqual({ exit: 0, errors: [] });
    expect(proxy.connects().slice(before)).toEqual([]);
  }, 120_000);

  test.each([
    ['HTTPS_PROXY', { HTTPS_PROXY: 'PROXY' }, true],
    ['HTTPS_PROXY and NO_PROXY with the address', { HTTPS_PROXY: 'PROXY', NO_PROXY: 'LAN' }, false],
  ])(
    'credentials: exec, kubectl in a later step: the plugin renews as main does, with %s',
    async (_name, proxyEnv, proxied) => {
      const extra = Object.fromEntries(
        Object.entries(proxyEnv).map(([k, v]) => [k, v === 'PROXY' ? proxy.url : lan]),
      );
      await env.withJob(async (job) => {
        const main = await job.main({ ...inputs(), credentials: 'exec' });
        expect({ exit: main.exitCode, errors: main.errors }).toEqual({ exit: 0, errors: [] });
        const grantId = main.outputs['grant-id']!;
        // Two thirds of the grant gone: the next kubectl call makes the plugin renew.
        const cachePath = job.state['credential-cache']!;
        const cache = JSON.parse(readFileSync(cachePath, 'utf8')) as Record<string, unknown>;
        const end = Date.now() + 20_000;
        writeFileSync(
          cachePath,
          JSON.stringify({
            ...cache,
            expiresAt: new Date(end).toISOString(),
            grantedAt: new Date(end - 600_000).toISOString(),
          }),
        );
        const before = proxy.connects().length;
        const whoami = await job.exec('kubectl', [
          'auth',
          'whoami',
          '-o',
          'jsonpath={.status.userInfo.username}',
        ]);
        expect({ code: whoami.code, stderr: whoami.stderr }).toEqual({ code: 0, stderr: '' });
        expect(whoami.stdout).toBe(`system:serviceaccount:${env.ns}:${grantId}`);
        await broker.auditLine((l) => l.action === 'renewal' && l.grantId === grantId);
        // The renewal's OIDC token request and its broker call (kubectl's own API calls go to a loopback
        // API server, which no client proxies).
        expect(proxy.connects().slice(before)).toEqual(
          proxied ? [hostPort(tokenUrl), hostPort(broker.url)] : [],
        );
        const post = await job.post();
        expect(post.exitCode).toBe(0);
      }, jobEnv(extra));
    },
    120_000,
  );

  test('a dead proxy fails the step naming the proxy, never the credentials in its URL', async () => {
    const deadPort = await freePort();
    const main = await env.withJob(
      (job) => job.main(inputs()),
      jobEnv({ HTTPS_PROXY: `http://ci-user:hunter2-secret@127.0.0.1:${deadPort}` }),
    );
    expect(main.exitCode).not.toBe(0);
    expect(main.errors.join('\n')).toContain(
      `cannot reach proxy http://127.0.0.1:${deadPort} (from HTTPS_PROXY): ECONNREFUSED`,
    );
    for (const text of [main.stdout, main.stderr, ...Object.values(main.files)]) {
      expect(text).not.toContain('hunter2-secret');
      expect(text).not.toContain('ci-user');
    }
  }, 120_000);

  test('TLS inside the tunnel is checked as on a direct connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-other-ca-'));
    try {
      const otherCa = readFileSync(selfSignedCert(dir, lan).certFile, 'utf8');
      const transport = createNodeTransport({ ca: otherCa, proxyEnv: { HTTPS_PROXY: proxy.url } });
      const before = proxy.connects().length;
      const err = await transport({
        method: 'GET',
        url: new URL('/readyz', broker.url),
        headers: {},
        timeoutMs: 10_000,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NetworkError);
      expect((err as NetworkError).message).toMatch(/certificate/i);
      expect(proxy.connects().slice(before)).toContain(hostPort(broker.url));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
