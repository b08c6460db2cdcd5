// The main step with every dependency faked: order of masking, outputs and state contents, file
// permissions, the retry policy against the broker, fail-fast paths, and cleanup on failure.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { NetworkError, type HttpTransport } from '../../src/action/http-transport.js';
import { readGrantCredential } from '../../src/action/kubeconfig-credential.js';
import { EXCHANGE_DEADLINE_MS, run, type MainDeps } from '../../src/action/main-run.js';
import { STATE } from '../../src/action/state.js';
import {
  brokerError,
  exchangeResponse,
  fakeCore,
  json,
  scriptedTransport,
  TOKEN,
  virtualClock,
  type FakeCore,
  type Responder,
} from './support/fakes.js';

let root: string;
let runnerTemp: string;
let workspace: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'k8s-ea-main-'));
  runnerTemp = join(root, 'temp');
  workspace = join(root, 'workspace');
  mkdirSync(runnerTemp);
  mkdirSync(workspace);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const baseInputs = { 'broker-url': 'https://broker.example.com', namespace: 'team-a', role: 'deployer' };

interface Setup {
  core: FakeCore;
  deps: MainDeps;
  jwts: string[];
  transport: ReturnType<typeof scriptedTransport>;
  summaries: string[];
  cas: (string | undefined)[];
  clock: ReturnType<typeof virtualClock>;
}

function setup(
  opts: { inputs?: Record<string, string>; env?: Record<string, string>; responders?: Responder[] } = {},
): Setup {
  const core = fakeCore({ ...baseInputs, ...(opts.inputs ?? {}) });
  const jwts: string[] = [];
  const transport = scriptedTransport(...(opts.responders ?? [() => json(200, exchangeResponse())]));
  const summaries: string[] = [];
  const cas: (string | undefined)[] = [];
  const clock = virtualClock();
  const deps: MainDeps = {
    core,
    env: {
      RUNNER_TEMP: runnerTemp,
      GITHUB_WORKSPACE: workspace,
      ACTIONS_ID_TOKEN_REQUEST_URL: 'https://token.example/x?api-version=2.0',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runtime-token',
      GITHUB_STEP_SUMMARY: join(root, 'summary'),
      ...(opts.env ?? {}),
    },
    getIdToken: async (aud) => {
      const jwt = `jwt-for-${aud}-${jwts.length + 1}-SECRETJWT`;
      jwts.push(jwt);
      return jwt;
    },
    createTransport: (ca): HttpTransport => {
      cas.push(ca);
      return transport.transport;
    },
    writeSummary: async (md) => {
      summaries.push(md);
    },
    runContext: { eventName: 'push', payload: {} },
    clock,
  };
  return { core, deps, jwts, transport, summaries, cas, clock };
}

/** Every string the action handed to the runner other than setSecret: logs, outputs, state, env. */
function everythingPrinted(s: Setup): string {
  return [
    ...s.core.calls.filter((c) => c.method !== 'setSecret' && c.method !== 'getInput').flatMap((c) => c.args),
    ...s.summaries,
  ].join('\n');
}

describe('main: platforms', () => {
  test('Windows fails fast with the reason and the fix, before any state, request or file', async () => {
    const s = setup();
    await run({ ...s.deps, platform: 'win32' });
    expect(s.core.failed).toEqual([
      expect.stringMatching(/^Windows runners are not supported: .*runs-on: ubuntu-latest/),
    ]);
    expect(s.core.calls.filter((c) => c.method === 'saveState')).toEqual([]);
    expect(s.transport.requests).toEqual([]);
    expect(s.jwts).toEqual([]);
    expect(readdirSync(runnerTemp)).toEqual([]);
  });

  test.each(['linux', 'darwin'] as const)('%s runs', async (platform) => {
    const s = setup();
    await run({ ...s.deps, platform });
    expect(s.core.failed).toEqual([]);
  });
});

describe('main: success', () => {
  test('writes a 0600 kubeconfig in a fresh 0700 directory under RUNNER_TEMP, and sets outputs', async () => {
    const s = setup();
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    const path = s.core.outputs.kubeconfig!;
    expect(dirname(dirname(path))).toBe(runnerTemp);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(lstatSync(dirname(path)).mode & 0o777).toBe(0o700);
    expect(readGrantCredential(readFileSync(path, 'utf8'))).toMatchObject({
      token: TOKEN,
      namespace: 'team-a',
    });
    expect(s.core.outputs).toEqual({
      kubeconfig: path,
      context: 'deployer@team-a',
      namespace: 'team-a',
      'service-account': 'system:serviceaccount:team-a:gha-1234-abcd',
      'expires-at': '2030-01-01T00:15:00Z',
      'grant-id': 'gha-1234-abcd',
    });
    expect(s.core.exported).toEqual({ KUBECONFIG: path, KUBE_CONFIG_PATH: path });
  });

  test('KUBECONFIG lists this grant first and keeps what it listed before (an earlier call, own files)', async () => {
    const earlier = `/runner/_temp/earlier/kubeconfig${delimiter}/home/me/.kube/config`;
    const s = setup({ env: { KUBECONFIG: `${earlier}${delimiter}${delimiter}/home/me/.kube/config` } });
    await run(s.deps);
    const path = s.core.outputs.kubeconfig!;
    expect(s.core.exported).toEqual({ KUBECONFIG: `${path}${delimiter}${earlier}`, KUBE_CONFIG_PATH: path });
  });

  test('job-summary: false writes no summary; export-kube-config-path: false exports KUBECONFIG only', async () => {
    const s = setup({ inputs: { 'job-summary': 'false', 'export-kube-config-path': 'false' } });
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    expect(s.summaries).toEqual([]);
    expect(s.core.exported).toEqual({ KUBECONFIG: s.core.outputs.kubeconfig });
  });

  test('sends the requested namespace, role and ttl with a JWT for the configured audience', async () => {
    const s = setup({ inputs: { ttl: '900', audience: 'my-aud' } });
    await run(s.deps);
    expect(s.jwts).toEqual(['jwt-for-my-aud-1-SECRETJWT']);
    const req = s.transport.requests[0]!;
    expect(req.headers.authorization).toBe('Bearer jwt-for-my-aud-1-SECRETJWT');
    expect(JSON.parse(req.body!)).toEqual({ namespace: 'team-a', role: 'deployer', ttlSeconds: 900 });
  });

  test('masks the token and the JWT before anything else mentions them, and never prints either', async () => {
    const s = setup();
    await run(s.deps);
    const firstMention = (secret: string) =>
      s.core.calls.findIndex((c) => c.args.some((a) => a.includes(secret)));
    const tokenMask = s.core.calls.findIndex((c) => c.method === 'setSecret' && c.args[0] === TOKEN);
    expect(tokenMask).toBeGreaterThanOrEqual(0);
    expect(firstMention(TOKEN)).toBe(tokenMask);
    expect(s.core.secrets).toContain(s.jwts[0]);
    expect(everythingPrinted(s)).not.toContain(TOKEN);
    expect(everythingPrinted(s)).not.toContain(s.jwts[0]!);
  });

  test('saves what post needs in state, and not the token', async () => {
    const s = setup();
    await run(s.deps);
    const path = s.core.outputs.kubeconfig!;
    expect(s.core.state).toEqual({
      [STATE.revoke]: 'true',
      [STATE.brokerUrl]: 'https://broker.example.com/',
      [STATE.dir]: dirname(path),
      [STATE.kubeconfigPath]: path,
      [STATE.grantId]: 'gha-1234-abcd',
      [STATE.namespace]: 'team-a',
      [STATE.expiresAt]: '2030-01-01T00:15:00Z',
      // The fake broker's answer names no mode, as an older broker's: direct.
      [STATE.mode]: 'direct',
    });
    // The directory is recorded before the file is written, so post cleans up a half-written one.
    const order = s.core.calls.filter((c) => c.method === 'saveState').map((c) => c.args[0]);
    expect(order.indexOf(STATE.dir)).toBeLessThan(order.indexOf(STATE.kubeconfigPath));
  });

  test('writes a job summary with the grant and what the role allows, without the token', async () => {
    const s = setup();
    await run(s.deps);
    expect(s.summaries).toHaveLength(1);
    expect(s.summaries[0]).toContain('team-a');
    expect(s.summaries[0]).toContain('deployments');
    expect(s.summaries[0]).toContain('gha-1234-abcd');
    expect(s.summaries[0]).not.toContain(TOKEN);
  });

  test('export-kubeconfig: false exports nothing; broker-ca reaches the transport', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    const s = setup({
      inputs: { 'export-kubeconfig': 'false', 'export-kube-config-path': 'false', 'broker-ca': ca },
    });
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    expect(s.core.exported).toEqual({});
    expect(s.cas).toEqual([ca]);
  });

  test('kubeconfig-path outside the workspace is created there with mode 0600', async () => {
    const path = join(runnerTemp, 'my-kubeconfig');
    const s = setup({ inputs: { 'kubeconfig-path': path } });
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    expect(s.core.outputs.kubeconfig).toBe(path);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(s.core.state[STATE.dir]).toBeUndefined();
  });
});

describe('main: retries', () => {
  test('retries 5xx and network errors with a fresh JWT each time, then succeeds', async () => {
    const s = setup({
      responders: [
        () => brokerError(503, 'ERR_UNAVAILABLE', 'temporarily unavailable; retry later'),
        () => new NetworkError('cannot reach broker.example.com: ECONNRESET'),
        () => json(200, exchangeResponse()),
      ],
    });
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    expect(s.transport.requests).toHaveLength(3);
    expect(new Set(s.jwts).size).toBe(3);
    expect(s.core.infos.filter((m) => m.startsWith('broker exchange: attempt'))).toHaveLength(2);
  });

  test('honours Retry-After on 429', async () => {
    const s = setup({
      responders: [
        () => ({
          ...brokerError(429, 'ERR_RATE_LIMITED', 'too many requests; retry later'),
          headers: { 'retry-after': '12' },
        }),
        () => json(200, exchangeResponse()),
      ],
    });
    await run(s.deps);
    expect(s.core.failed).toEqual([]);
    expect(s.clock.sleeps).toEqual([12_000]);
  });

  test('does not retry a 403 and shows the broker reason, code and request id', async () => {
    const s = setup({
      responders: [() => brokerError(403, 'ERR_FORBIDDEN', 'not allowed by the broker policy', 'req-9')],
    });
    await run(s.deps);
    expect(s.transport.requests).toHaveLength(1);
    expect(s.core.failed).toHaveLength(1);
    expect(s.core.failed[0]).toContain(
      'not allowed by the broker policy (ERR_FORBIDDEN, HTTP 403, request id req-9)',
    );
    expect(s.core.failed[0]).toContain('broker policy');
    expect(readdirSync(runnerTemp)).toEqual([]);
    expect(s.core.outputs).toEqual({});
    expect(s.core.state[STATE.grantId]).toBeUndefined();
  });

  test('a refusal prints the presented claims and a fix for the code; the token and JWT appear nowhere', async () => {
    const s = setup({
      responders: [() => brokerError(403, 'ERR_FORBIDDEN', 'not allowed by the broker policy', 'req-9')],
    });
    const payload = {
      repository: 'octo-org/web',
      repository_id: '123456789',
      repository_owner: 'octo-org',
      repository_owner_id: '987654',
      ref: 'refs/heads/feature/x',
      ref_type: 'branch',
      event_name: 'push',
      workflow_ref: 'octo-org/web/.github/workflows/deploy.yml@refs/heads/feature/x',
      job_workflow_ref: 'octo-org/web/.github/workflows/deploy.yml@refs/heads/feature/x',
      runner_environment: 'self-hosted',
      aud: 'k8s-ephemeral-access',
      iss: 'https://token.actions.githubusercontent.com',
      sub: 'repo:octo-org/web:ref:refs/heads/feature/x',
      jti: 'jti-secret-ish',
    };
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.SIGNATURE-SECRET`;
    s.deps.getIdToken = async () => jwt;
    await run(s.deps);
    const info = s.core.calls.filter((c) => c.method === 'info').map((c) => c.args[0]!);
    const claims = info.find((m) => m.startsWith('The GitHub OIDC token this job presented'))!;
    expect(claims).toBeDefined();
    for (const text of [
      'repository: octo-org/web (repository_id 123456789)',
      'owner: octo-org (repository_owner_id 987654)',
      'ref: refs/heads/feature/x (ref_type branch), event_name: push, environment: (none)',
      'job_workflow_ref: octo-org/web/.github/workflows/deploy.yml@refs/heads/feature/x',
      'runner_environment: self-hosted, aud: k8s-ephemeral-access',
    ])
      expect(claims).toContain(text);
    expect(s.core.failed[0]).toContain(
      'Fix: no policy rule allows these claims (above) with this namespace, role and ttl',
    );
    const printed = everythingPrinted(s);
    expect(printed).not.toContain(jwt);
    expect(printed).not.toContain(jwt.split('.')[1]);
    expect(printed).not.toContain('SIGNATURE-SECRET');
    expect(printed).not.toContain('jti-secret-ish');
  });

  test('a broker that explains: the reason code and its one-line fix, with the allowed ttl', async () => {
    const s = setup({
      inputs: { ttl: '3600' },
      responders: [
        () =>
          json(403, {
            error: {
              code: 'ERR_FORBIDDEN',
              message: 'not allowed by the broker policy',
              requestId: 'req-7',
              reason: 'ttl_exceeds_rule',
              maxTtlSeconds: 900,
            },
          }),
      ],
    });
    await run(s.deps);
    expect(s.core.failed).toEqual([
      'broker refused the exchange: not allowed by the broker policy (ERR_FORBIDDEN, ttl_exceeds_rule, HTTP 403, request id req-7). ' +
        'Fix: ask for ttl ≤ 900 seconds (the longest the rules allowing this request permit), or leave ttl empty.',
    ]);
  });

  test('a reason the contract does not know, or a ttl out of bounds, is ignored', async () => {
    const s = setup({
      responders: [
        () =>
          json(403, {
            error: {
              code: 'ERR_FORBIDDEN',
              message: 'm',
              reason: 'rule_web_needs_tag',
              maxTtlSeconds: 99_999,
            },
          }),
      ],
    });
    await run(s.deps);
    expect(s.core.failed[0]).not.toContain('rule_web_needs_tag');
    expect(s.core.failed[0]).toContain('Fix: no policy rule allows');
  });

  test('step debug shows the request flow and the route, never a secret', async () => {
    const s = setup({
      env: { HTTPS_PROXY: 'http://user:pw-secret@proxy.corp:3128', NO_PROXY: 'token.example' },
    });
    await run(s.deps);
    const debug = s.core.calls.filter((c) => c.method === 'debug').map((c) => c.args[0]!);
    expect(debug).toEqual([
      'Exchange request: {"namespace":"team-a","role":"deployer"}; broker broker.example.com via proxy http://proxy.corp:3128 (from HTTPS_PROXY).',
      'OIDC token for audience "k8s-ephemeral-access": runner token service token.example direct.',
      'Got a GitHub OIDC token; sending the exchange.',
      'Exchange answered: grant gha-1234-abcd, token until 2030-01-01T00:20:00Z.',
    ]);
    expect(debug.join('\n')).not.toContain('pw-secret');
  });

  test('gives up within the overall deadline when the broker stays down', async () => {
    const s = setup({
      responders: [() => new NetworkError('cannot reach broker.example.com: ECONNREFUSED')],
    });
    const start = s.clock.now();
    await run(s.deps);
    expect(s.core.failed[0]).toMatch(/ECONNREFUSED/);
    expect(s.clock.now() - start).toBeLessThanOrEqual(EXCHANGE_DEADLINE_MS);
    expect(s.transport.requests.length).toBeGreaterThan(1);
    expect(readdirSync(runnerTemp)).toEqual([]);
  });

  test('retries a failing OIDC token request, then reports it with the audience', async () => {
    const s = setup();
    let calls = 0;
    s.deps.getIdToken = async () => {
      calls += 1;
      throw new Error('Failed to get ID Token. Error Code : 500');
    };
    await run(s.deps);
    expect(calls).toBe(4);
    expect(s.transport.requests).toHaveLength(0);
    expect(s.core.failed[0]).toMatch(/Could not get a GitHub OIDC token for audience "k8s-ephemeral-access"/);
  });
});

describe('main: fail fast', () => {
  test('without id-token permission: no token request, no network, an actionable message', async () => {
    const s = setup({ env: { ACTIONS_ID_TOKEN_REQUEST_URL: '' } });
    await run(s.deps);
    expect(s.jwts).toEqual([]);
    expect(s.transport.requests).toEqual([]);
    expect(s.core.failed).toEqual([expect.stringContaining('permissions: id-token: write')]);
  });

  test('an invalid input fails before anything else happens', async () => {
    const s = setup({ inputs: { ttl: 'forever' } });
    await run(s.deps);
    expect(s.core.failed).toEqual([expect.stringContaining('Input "ttl"')]);
    expect(s.core.state).toEqual({});
    expect(s.jwts).toEqual([]);
  });

  test('a kubeconfig-path whose directory links into the workspace is refused, and the grant revoked', async () => {
    const link = join(runnerTemp, 'sneaky');
    symlinkSync(workspace, link);
    const s = setup({
      inputs: { 'kubeconfig-path': join(link, 'kubeconfig') },
      responders: [
        () => json(200, exchangeResponse()),
        () => json(200, { grantId: 'gha-1234-abcd', revoked: true }),
      ],
    });
    await run(s.deps);
    expect(s.core.failed[0]).toMatch(/resolves into GITHUB_WORKSPACE/);
    expect(existsSync(join(workspace, 'kubeconfig'))).toBe(false);
    expect(s.transport.requests.map((r) => r.method)).toEqual(['POST', 'DELETE']);
    expect(s.transport.requests[1]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  test('an existing file at kubeconfig-path is not overwritten; the grant is revoked', async () => {
    const path = join(runnerTemp, 'taken');
    mkdirSync(path);
    const s = setup({
      inputs: { 'kubeconfig-path': path },
      responders: [
        () => json(200, exchangeResponse()),
        () => json(200, { grantId: 'gha-1234-abcd', revoked: true }),
      ],
    });
    await run(s.deps);
    expect(s.core.failed[0]).toMatch(/Refusing to write/);
    expect(s.core.infos).toContain(
      'Revoked grant gha-1234-abcd because its kubeconfig could not be written.',
    );
    expect(s.core.state[STATE.kubeconfigPath]).toBeUndefined();
  });

  test('a broker answer that breaks the contract fails without printing the token', async () => {
    const s = setup({ responders: [() => json(200, { ...exchangeResponse(), server: 'http://plain' })] });
    await run(s.deps);
    expect(s.core.failed[0]).toMatch(/"server" is not an https:\/\/ URL/);
    expect(everythingPrinted(s)).not.toContain(TOKEN);
    expect(readdirSync(runnerTemp)).toEqual([]);
  });
});
