// The broker end to end over HTTPS: the real token verifier against the local OIDC issuer, the
// real API server, and the broker's Kubernetes client under exactly the deploy/ RBAC. The policy
// is a small in-test PolicyEngine (the policy module has its own tests); what is proven here is
// what the broker does with its answers. Every refusal is checked to create nothing.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { SignJWT, base64url, exportSPKI, importJWK, decodeJwt } from 'jose';
import type { ExchangeRequest, ExchangeResponse, ErrorResponse } from '../../src/shared/api.js';
import type { Reason } from '../../src/shared/contract.js';
import { BrokerError } from '../../src/shared/errors.js';
import { grantIdFor } from '../../src/broker/naming.js';
import type { Grantable, PolicyEngine, VerifiedClaims } from '../../src/broker/types.js';
import {
  adminKubeconfigPath,
  kubectl,
  kubectlAdmin,
  kubectlStatus,
  rbacApi,
  readAudit,
  tokenKubeconfig,
  uniqueName,
  waitFor,
  waitForRevocation,
} from '../../test/support/cluster.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { REPO_ID } from '../../test/support/policy.js';

let env: BrokerEnv;
/** A namespace the broker has no RBAC or rule for. */
let other: string;
let broker: InProcessBroker;
const cleanups: (() => void)[] = [];

/**
 * Allowed by this policy, harmless, and readable by the broker (its rules pass the named-role
 * check), but deploy/ does not let the broker bind it: creation fails halfway.
 */
const UNBINDABLE = uniqueName('k8s-ea-test-unbindable');
const ROLES: Record<string, Grantable['roleRef'] & { kind: 'ClusterRole' }> = {
  deployer: { kind: 'ClusterRole', name: 'k8s-ea-deployer' },
  viewer: { kind: 'ClusterRole', name: 'k8s-ea-viewer' },
  'not-bindable': { kind: 'ClusterRole', name: UNBINDABLE },
};

/** The unbindable ClusterRole, and read access to it for the broker (as for any role its policy binds). */
function unbindableRoleYaml(brokerNamespace: string): string {
  const meta = (name: string) => ({ name, labels: { 'k8s-ephemeral-access.test/owner': 'jest' } });
  const rbacGroup = 'rbac.authorization.k8s.io';
  const items = [
    // configmaps: which the broker itself may not read, so only `bind` would let it grant this.
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'ClusterRole',
      metadata: meta(UNBINDABLE),
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'ClusterRole',
      metadata: meta(`${UNBINDABLE}-reader`),
      rules: [
        {
          apiGroups: [rbacGroup],
          resources: ['clusterroles'],
          verbs: ['get', 'watch'],
          resourceNames: [UNBINDABLE],
        },
      ],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: meta(`${UNBINDABLE}-reader`),
      roleRef: { apiGroup: rbacGroup, kind: 'ClusterRole', name: `${UNBINDABLE}-reader` },
      subjects: [{ kind: 'ServiceAccount', name: 'k8s-ea-broker', namespace: brokerNamespace }],
    },
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

/** Default deny, exact matches, as a real policy would: only refs/heads/main pushes of one repository. */
function testPolicy(namespace: string): PolicyEngine {
  return {
    namespaces: () => [namespace],
    namedRoles: () => Object.values(ROLES),
    sourceAllowed: () => true,
    authorize(claims: VerifiedClaims, req: ExchangeRequest): Grantable {
      const deny = (reason: Reason): never => {
        throw new BrokerError('ERR_FORBIDDEN', reason);
      };
      if (claims.repository_id !== REPO_ID) deny('no_matching_rule');
      if (claims.ref !== 'refs/heads/main') deny('no_matching_rule');
      if (claims.event_name !== 'push') deny('no_matching_rule');
      if (req.namespace !== namespace) deny('namespace_not_allowed');
      const roleRef = ROLES[req.role] ?? deny('role_not_allowed');
      const ttl = req.ttlSeconds ?? 300;
      if (ttl > 900) deny('ttl_exceeds_rule');
      return { ruleName: 'main-push', namespace, role: req.role, roleRef, rules: [], ttlSeconds: ttl };
    },
  };
}

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['exchange'], outsiders: ['exchange-other'] });
  other = env.outsiders[0]!;
  kubectlAdmin(['apply', '-f', '-'], unbindableRoleYaml(env.rbac.brokerNamespace));
  broker = await env.startInProcessBroker({ policy: testPolicy(env.ns), reaperIntervalSeconds: 1 });
});
afterAll(async () => {
  await broker?.stop();
  cleanups.forEach((c) => c());
  await env?.cleanup();
  kubectlAdmin(['delete', 'clusterrole', UNBINDABLE, `${UNBINDABLE}-reader`, '--ignore-not-found']);
  kubectlAdmin(['delete', 'clusterrolebinding', `${UNBINDABLE}-reader`, '--ignore-not-found']);
});

/**
 * An exchange, and on success the wait for its self-revoke objects, which the broker creates right
 * after answering: object snapshots taken next then see the whole grant.
 */
async function exchange(token: string, body: unknown = { namespace: env.ns, role: 'deployer' }) {
  const r = await broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', { token, body });
  if (r.status === 200)
    await waitFor('the self-revoke RoleBinding', () =>
      rbacApi()
        .readNamespacedRoleBinding({ name: `${r.body.grantId}-revoke`, namespace: r.body.namespace })
        .then(
          () => true,
          () => undefined,
        ),
    );
  return r;
}

function kubeconfigFor(token: string, namespace = env.ns): string {
  const kc = tokenKubeconfig(token, namespace);
  cleanups.push(kc.cleanup);
  return kc.path;
}

/** Runs a request that must be refused, and proves the cluster is unchanged by it. */
async function expectRefusedWithNothingCreated(
  send: () => Promise<{ status: number; body: unknown }>,
  status: number | number[],
) {
  const before = managedObjects([env.ns, other]);
  const auditBefore = broker.auditLines.length;
  const r = await send();
  expect(Array.isArray(status) ? status : [status]).toContain(r.status);
  expect(managedObjects([env.ns, other])).toEqual(before);
  const denial = broker.auditLines.slice(auditBefore).find((l) => l.action === 'denial');
  expect(denial).toBeDefined();
  return { response: r, denial: denial! };
}

describe('exchange', () => {
  test('a valid token gets a grant over HTTPS; kubectl can do exactly what the role allows, there only', async () => {
    const jwt = await env.issuer.sign();
    const r = await exchange(jwt, { namespace: env.ns, role: 'deployer', ttlSeconds: 600 });
    expect(r.status).toBe(200);
    const g = r.body;
    expect(g).toMatchObject({ namespace: env.ns, serviceAccount: g.grantId, role: 'deployer' });
    expect(g.grantId).toMatch(/^gha-[0-9a-f]{32}$/);
    expect(Date.parse(g.expiresAt)).toBeLessThanOrEqual(Date.parse(g.tokenExpiresAt));
    expect(g.server).toMatch(/^https:\/\//);
    expect(Buffer.from(g.certificateAuthorityData, 'base64').toString()).toContain('BEGIN CERTIFICATE');
    expect(r.headers['x-request-id']).toBeTruthy();

    // Build the job's kubeconfig from the answer only, as the action does.
    const kc = kubeconfigFor(g.token);
    await waitFor('the grant to allow listing pods', () =>
      kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined,
    );
    expect(kubectlStatus(kc, ['create', 'deployment', 'web', '--image=registry.invalid/web:1']).ok).toBe(
      true,
    );
    expect(kubectlStatus(kc, ['get', 'deployments']).ok).toBe(true);
    expect(kubectlStatus(kc, ['get', 'secrets'])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['create', 'secret', 'generic', 's', '--from-literal=a=b'])).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(kubectlStatus(kc, ['-n', other, 'get', 'pods'])).toMatchObject({ ok: false, status: 403 });
    expect(kubectlStatus(kc, ['get', 'rolebindings'])).toMatchObject({ ok: false, status: 403 });
    // pods/exec on a real pod (created by the admin; it never runs, but exec is refused before that matters).
    kubectlAdmin(['-n', env.ns, 'run', 'target', '--image=registry.invalid/x:1', '--restart=Never']);
    const exec = kubectlStatus(kc, ['exec', 'target', '--', 'true']);
    expect(exec).toMatchObject({ ok: false, status: 403 });
    expect(exec.stderr).toMatch(/pods\/exec|"exec"/);

    // Audit: joins the run to the Kubernetes identity and the token's credential id; no secret anywhere.
    const line = broker.auditLines.find((l) => l.action === 'exchange' && l.grantId === g.grantId)!;
    expect(line).toMatchObject({
      type: 'audit',
      namespace: env.ns,
      serviceAccount: g.grantId,
      credentialId: `JTI=${decodeJwt(g.token).jti as string}`,
      expiresAt: g.expiresAt,
      github: expect.objectContaining({
        iss: env.issuer.issuer,
        repository_id: REPO_ID,
        run_id: env.issuer.claims.run_id,
        jti: decodeJwt(jwt).jti,
      }),
    });
    expect(typeof line.serviceAccountUid).toBe('string');
    // The join works: the API server's own audit log names the same credential id for kubectl's calls.
    const apiserverEvent = await waitFor('the apiserver audit event', () =>
      readAudit().find(
        (e) =>
          e.user.username === `system:serviceaccount:${env.ns}:${g.grantId}` &&
          e.user.extra?.['authentication.kubernetes.io/credential-id']?.[0] === line.credentialId &&
          e.objectRef?.resource === 'deployments',
      ),
    );
    expect(apiserverEvent.objectRef?.namespace).toBe(env.ns);
    expect(apiserverEvent.user.uid).toBe(line.serviceAccountUid);
    const everything = JSON.stringify([broker.auditLines, broker.logLines]);
    expect(everything).not.toContain(g.token);
    expect(everything).not.toContain(jwt);
    expect(everything).not.toContain(jwt.split('.')[2]);
  });

  test('a replayed JWT is refused and never yields a second credential', async () => {
    const jwt = await env.issuer.sign();
    const first = await exchange(jwt, { namespace: env.ns, role: 'viewer' });
    expect(first.status).toBe(200);
    const { response } = await expectRefusedWithNothingCreated(
      () => exchange(jwt, { namespace: env.ns, role: 'viewer' }),
      401,
    );
    expect(JSON.stringify(response.body)).not.toContain('gha-');
  });
});

describe('single use across replicas', () => {
  test('a JWT used at one replica is refused at another, even after its grant was revoked', async () => {
    const replicaB = await env.startInProcessBroker({ policy: testPolicy(env.ns), https: false });
    try {
      const jwt = await env.issuer.sign();
      const first = await exchange(jwt, { namespace: env.ns, role: 'viewer' });
      expect(first.status).toBe(200);
      const body = { namespace: env.ns, role: 'viewer' };
      const before = managedObjects([env.ns]);
      const whileAlive = await replicaB.request<ErrorResponse>('POST', '/v1/exchange', { token: jwt, body });
      expect(whileAlive.status).toBe(401);
      expect(managedObjects([env.ns])).toEqual(before);

      const revoked = await broker.request('DELETE', `/v1/grants/${first.body.grantId}`, {
        token: first.body.token,
      });
      expect(revoked.status).toBe(200);
      const afterRevoke = await replicaB.request<ErrorResponse>('POST', '/v1/exchange', { token: jwt, body });
      expect(afterRevoke.status).toBe(401);
      expect(managedObjects([env.ns]).filter((o) => o.includes(first.body.grantId))).toEqual([]);
      expect(replicaB.auditLines.filter((l) => l.action === 'denial').map((l) => l.reason)).toEqual([
        'jwt_replayed',
        'jwt_replayed',
      ]);
    } finally {
      await replicaB.stop();
    }
  });
});

describe('refused tokens: 400/401/413, logged, nothing created', () => {
  const tamper = (jwt: string): string => {
    const [h, p, s] = jwt.split('.');
    const sig = Buffer.from(s!, 'base64url');
    sig[10] = sig[10]! ^ 0xff;
    return `${h}.${p}.${base64url.encode(sig)}`;
  };
  const unsigned = async (): Promise<string> => {
    const good = decodeJwt(await env.issuer.sign());
    const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
    return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(good)}.`;
  };
  const hs256WithPublicKey = async (): Promise<string> => {
    const pem = await exportSPKI(
      (await importJWK(env.issuer.publicJwk, 'RS256', { extractable: true })) as Parameters<
        typeof exportSPKI
      >[0],
    );
    const good = decodeJwt(await env.issuer.sign());
    return new SignJWT(good)
      .setProtectedHeader({ alg: 'HS256', kid: env.issuer.kid })
      .sign(new TextEncoder().encode(pem));
  };
  const cases: [string, () => Promise<string>, number | number[]][] = [
    ['bad signature', async () => tamper(await env.issuer.sign()), 401],
    ['alg none', unsigned, [400, 401]],
    ['HS256 keyed with the public key', hs256WithPublicKey, 401],
    ['unknown kid', () => env.issuer.sign({}, { header: { kid: 'not-a-known-key' } }), 401],
    [
      'wrong issuer',
      () => env.issuer.sign({}, { issuer: 'https://token.actions.githubusercontent.com' }),
      401,
    ],
    ['wrong audience', () => env.issuer.sign({}, { audience: 'sts.amazonaws.com' }), 401],
    ['expired', () => env.issuer.sign({}, { expiresIn: -120, issuedAt: -420, notBefore: -430 }), 401],
    ['not yet valid', () => env.issuer.sign({}, { notBefore: 300, expiresIn: 600 }), 401],
    ['missing repository_id', () => env.issuer.sign({}, { omit: ['repository_id'] }), [400, 401]],
    ['malformed JWT', async () => 'not.a-jwt', [400, 401]],
  ];
  test.each(cases)('%s', async (_name, make, status) => {
    const jwt = await make();
    const { response, denial } = await expectRefusedWithNothingCreated(() => exchange(jwt), status);
    const err = (response.body as ErrorResponse).error;
    expect(['ERR_UNAUTHENTICATED', 'ERR_BAD_REQUEST']).toContain(err.code);
    expect(err.message).toMatch(/^(token rejected|malformed request)$/);
    expect(typeof denial.reason).toBe('string');
    expect(denial.reason).not.toBe('');
  });

  test('no bearer token → 401', async () => {
    await expectRefusedWithNothingCreated(
      () => broker.request('POST', '/v1/exchange', { body: { namespace: env.ns, role: 'viewer' } }),
      401,
    );
  });

  test('oversized body → 413 (declared and streamed)', async () => {
    const jwt = await env.issuer.sign();
    const big = JSON.stringify({ namespace: env.ns, role: 'viewer', pad: 'x'.repeat(20_000) });
    const { denial } = await expectRefusedWithNothingCreated(
      () => broker.request('POST', '/v1/exchange', { token: jwt, rawBody: big }),
      413,
    );
    expect(denial.reason).toBe('body_too_large');
    await expectRefusedWithNothingCreated(
      () =>
        broker.request('POST', '/v1/exchange', {
          token: jwt,
          rawBody: big,
          headers: { 'transfer-encoding': 'chunked' },
        }),
      413,
    );
  });

  test('non-JSON bodies and unknown fields → 400', async () => {
    const jwt = await env.issuer.sign();
    await expectRefusedWithNothingCreated(
      () =>
        broker.request('POST', '/v1/exchange', {
          token: jwt,
          rawBody: 'namespace=x',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
      400,
    );
    await expectRefusedWithNothingCreated(
      () => broker.request('POST', '/v1/exchange', { token: jwt, rawBody: '{"namespace":' }),
      400,
    );
    await expectRefusedWithNothingCreated(
      () => exchange(jwt, { namespace: env.ns, role: 'viewer', admin: true }),
      400,
    );
  });
});

describe('policy refusals: 403 and nothing created', () => {
  const cases: [string, Record<string, string>, Partial<ExchangeRequest>, Reason][] = [
    ['another repository', { repository_id: '999' }, {}, 'no_matching_rule'],
    ['another ref', { ref: 'refs/heads/feature' }, {}, 'no_matching_rule'],
    ['pull_request_target event', { event_name: 'pull_request_target' }, {}, 'no_matching_rule'],
    ['a namespace the policy does not grant', {}, { namespace: 'kube-system' }, 'namespace_not_allowed'],
    ['a role the policy does not know', {}, { role: 'cluster-admin' }, 'role_not_allowed'],
    ['a TTL above the maximum', {}, { ttlSeconds: 3600 }, 'ttl_exceeds_rule'],
  ];
  test.each(cases)('%s', async (_name, claims, req, reason) => {
    const jwt = await env.issuer.sign(claims);
    const { response, denial } = await expectRefusedWithNothingCreated(
      () => exchange(jwt, { namespace: env.ns, role: 'viewer', ...req }),
      403,
    );
    expect((response.body as ErrorResponse).error).toMatchObject({
      code: 'ERR_FORBIDDEN',
      message: 'not allowed by the broker policy',
    });
    expect(denial.reason).toBe(reason);
  });

  test('a grant the cluster refuses halfway (no bind on the role) → 500, and nothing is left behind', async () => {
    const jwt = await env.issuer.sign();
    const { response, denial } = await expectRefusedWithNothingCreated(
      () => exchange(jwt, { namespace: env.ns, role: 'not-bindable' }),
      500,
    );
    expect((response.body as ErrorResponse).error.code).toBe('ERR_INTERNAL');
    expect(denial.reason).toBe('grant_refused_by_cluster');
    // Nothing was granted, so the JWT's single-use record was rolled back too.
    const ledger = kubectlAdmin(['-n', env.rbac.brokerNamespace, 'get', 'leases', '-o', 'name']);
    expect(ledger).not.toContain(grantIdFor({ ...(decodeJwt(jwt) as unknown as VerifiedClaims) }));
  });
});

describe('revocation', () => {
  async function grant(role = 'viewer', claims: Record<string, string> = {}): Promise<ExchangeResponse> {
    const r = await exchange(await env.issuer.sign(claims), { namespace: env.ns, role });
    expect(r.status).toBe(200);
    return r.body;
  }

  test('with the grant token: every object removed, then 403, then 401; a repeat is 401', async () => {
    const g = await grant();
    const kc = kubeconfigFor(g.token);
    await waitFor('the grant to work', () => (kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined));
    const started = Date.now();
    const r = await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token });
    expect(r).toMatchObject({ status: 200, body: { grantId: g.grantId, revoked: true } });
    expect(managedObjects([env.ns]).filter((o) => o.includes(g.grantId))).toEqual([]);
    const { first, firstMs, unauthorizedMs } = await waitForRevocation(kc, started);
    console.log(
      `revoke via broker: first denial ${first} after ${firstMs} ms, 401 after ${unauthorizedMs} ms`,
    );
    expect([401, 403]).toContain(first);
    // No GitHub token came with the revoke: the line names the run the grant recorded.
    expect(broker.auditLines.find((l) => l.action === 'revocation' && l.grantId === g.grantId)).toMatchObject(
      {
        by: 'grant-token',
        github: expect.objectContaining({
          repository: 'octo-org/octo-repo',
          run_id: expect.any(String),
          run_attempt: '1',
        }),
      },
    );
    expect((await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token })).status).toBe(401);
  });

  test('with a fresh OIDC JWT of the same job; another run or a sibling job gets the same 404 as a missing grant', async () => {
    const g = await grant();
    const stranger = await broker.request('DELETE', `/v1/grants/${g.grantId}`, {
      token: await env.issuer.sign({ run_id: '1' }),
    });
    // Same repository, run and attempt, another job of the run (GitHub's check_run_id).
    const sibling = await broker.request('DELETE', `/v1/grants/${g.grantId}`, {
      token: await env.issuer.sign({ check_run_id: '1' }),
    });
    const missing = await broker.request('DELETE', `/v1/grants/gha-${'0'.repeat(32)}`, {
      token: await env.issuer.sign(),
    });
    expect(stranger.status).toBe(404);
    expect(sibling.status).toBe(404);
    expect(missing.status).toBe(404);
    for (const r of [stranger, sibling])
      expect((r.body as ErrorResponse).error.message).toBe((missing.body as ErrorResponse).error.message);
    expect(managedObjects([env.ns]).filter((o) => o.includes(g.grantId))).toHaveLength(4);

    const r = await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: await env.issuer.sign() });
    expect(r).toMatchObject({ status: 200, body: { revoked: true } });
    expect(managedObjects([env.ns]).filter((o) => o.includes(g.grantId))).toEqual([]);
  });

  test('a grant whose token carried no check_run_id is revoked only with its own token', async () => {
    const r = await exchange(await env.issuer.sign({}, { omit: ['check_run_id'] }), {
      namespace: env.ns,
      role: 'viewer',
    });
    expect(r.status).toBe(200);
    const sameRun = await env.issuer.sign({}, { omit: ['check_run_id'] });
    expect((await broker.request('DELETE', `/v1/grants/${r.body.grantId}`, { token: sameRun })).status).toBe(
      404,
    );
    expect(managedObjects([env.ns]).filter((o) => o.includes(r.body.grantId))).toHaveLength(4);
    const own = await broker.request('DELETE', `/v1/grants/${r.body.grantId}`, { token: r.body.token });
    expect(own.status).toBe(200);
  });

  test('a JWT spent on a revocation is in the cross-replica ledger: another replica will not exchange it', async () => {
    const g = await grant();
    const revoking = await env.issuer.sign();
    expect((await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: revoking })).status).toBe(200);
    const ledger = kubectlAdmin(['-n', env.rbac.brokerNamespace, 'get', 'leases', '-o', 'name']);
    expect(ledger).toContain(grantIdFor(decodeJwt(revoking) as unknown as VerifiedClaims));
    const replicaB = await env.startInProcessBroker({ policy: testPolicy(env.ns) });
    try {
      const r = await replicaB.request<ErrorResponse>('POST', '/v1/exchange', {
        token: revoking,
        body: { namespace: env.ns, role: 'viewer' },
      });
      expect(r.status).toBe(401);
      expect(replicaB.auditLines.at(-1)).toMatchObject({ action: 'denial', reason: 'jwt_replayed' });
    } finally {
      await replicaB.stop();
    }
  });

  test("another grant's token cannot revoke it (404); no token → 401", async () => {
    const a = await grant();
    const b = await grant();
    expect((await broker.request('DELETE', `/v1/grants/${a.grantId}`, { token: b.token })).status).toBe(404);
    expect((await broker.request('DELETE', `/v1/grants/${a.grantId}`)).status).toBe(401);
    expect(managedObjects([env.ns]).filter((o) => o.includes(a.grantId))).toHaveLength(4);
    for (const g of [a, b])
      expect((await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token })).status).toBe(
        200,
      );
  });
});

describe('reaper', () => {
  test('a grant whose revocation never came is deleted after its expiry (5 s grant)', async () => {
    const r = await exchange(await env.issuer.sign(), { namespace: env.ns, role: 'viewer', ttlSeconds: 5 });
    expect(r.status).toBe(200);
    const g = r.body;
    expect(Date.parse(g.expiresAt) - Date.now()).toBeLessThan(6_000);
    expect(Date.parse(g.tokenExpiresAt) - Date.now()).toBeGreaterThan(500_000);
    const kc = kubeconfigFor(g.token);
    await waitFor('the grant to work', () => (kubectlStatus(kc, ['get', 'pods']).ok ? true : undefined));
    await waitFor(
      'the reaper',
      () => (managedObjects([env.ns]).some((o) => o.includes(g.grantId)) ? undefined : true),
      30_000,
      250,
    );
    console.log(`reaped ${Date.now() - Date.parse(g.expiresAt)} ms after expiry`);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(g.expiresAt));
    // kubectl runs synchronously, blocking this process's event loop, so it can see the grant gone
    // before the in-process reaper has handled the DELETE's answer and written its audit line.
    const reapLine = await waitFor('the reap audit line', () =>
      broker.auditLines.find((l) => l.action === 'reap' && l.grantId === g.grantId),
    );
    expect(reapLine).toMatchObject({
      namespace: env.ns,
      by: 'reaper',
    });
    await waitFor('the reaped token to be refused', () =>
      kubectlStatus(kc, ['get', 'pods']).ok ? undefined : true,
    );
  });
});

describe('service endpoints', () => {
  test('healthz and readyz on both listeners; metrics only on the internal one', async () => {
    for (const get of [(p: string) => broker.request('GET', p), (p: string) => broker.internalGet(p)]) {
      expect((await get('/healthz')).status).toBe(200);
      expect((await get('/readyz')).status).toBe(200);
    }
    expect((await broker.request('GET', '/metrics')).status).toBe(404);
    const m = await broker.internalGet('/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/k8s_ea_exchanges_total\{result="granted"\} [1-9]/);
    expect(m.text).toMatch(/k8s_ea_denials_total\{reason="jwt_replayed"\} 1/);
    expect(m.text).toContain('k8s_ea_exchange_duration_seconds_bucket');
    expect((await broker.request('GET', '/nope')).status).toBe(404);
    expect((await broker.internalGet('/v1/exchange')).status).toBe(404);
  });

  test('the admin sees nothing left in the other namespace', () => {
    expect(kubectl(adminKubeconfigPath(), ['-n', other, 'get', 'sa', '-o', 'name']).stdout).not.toContain(
      'gha-',
    );
  });
});
