// The attack corpus (issue 7): hostile inputs sent to the broker over its real HTTPS server, with
// the real token verifier (against the local OIDC issuer), a real policy file parsed by the real
// policy loader, and the real API server under exactly the deploy/ RBAC. Every row must be refused
// with 400/401/403/413, answer only the generic client message, record the precise reason in the
// audit line of the same request id, and leave the cluster's managed objects exactly as they were.
// Positive controls first prove that the rules the corpus probes do grant when the input is honest.
import { webcrypto } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { SignJWT, base64url, decodeJwt, exportJWK, exportSPKI, generateKeyPair, importJWK } from 'jose';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import type { ErrorCode } from '../../src/shared/contract.js';
import { CLIENT_MESSAGE } from '../../src/shared/errors.js';
import type { GitHubClaims, OidcIssuer, SignOptions } from '../../test/support/oidc-issuer.js';
import type { BrokerRequestOptions, BrokerResponse } from '../../test/support/broker-request.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { kubectl, tokenKubeconfig, uniqueName, waitFor } from '../../test/support/cluster.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { cleanupCountingLeaks, startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { OWNER_ID, REPO_ID } from '../../test/support/policy.js';
import { gatewayAttackCorpus } from './support/gateway-attacks.js';

const ATTACKER_REPO_ID = '555000111';
const ATTACKER_OWNER_ID = '444000222';

let env: BrokerEnv;
let issuer: OidcIssuer;
let broker: InProcessBroker;
let attackerKeys: Awaited<ReturnType<typeof generateKeyPair>>;
const counts = { inputs: 0, refused: 0 };

/** A realistic policy: main pushes, release branches and tags by glob, and a pinned production deploy. */
const policy = {
  rules: [
    {
      name: 'main-pushes',
      match: { event_name: ['push', 'workflow_dispatch'], runner_environment: 'github-hosted' },
      roles: ['deployer', 'viewer'],
    },
    {
      name: 'release-branches',
      match: { ref: { glob: 'refs/heads/release/*' } },
      maxTtlSeconds: 600,
    },
    { name: 'version-tags', match: { ref: { glob: 'refs/tags/v*' } }, maxTtlSeconds: 600 },
    {
      name: 'production-deploy',
      match: {
        ref: undefined,
        environment: 'production',
        event_name: 'workflow_dispatch',
        job_workflow_ref: { glob: 'octo-org/deploy-workflows/.github/workflows/*.yml@refs/tags/v*' },
      },
      roles: ['deployer'],
      maxTtlSeconds: 600,
    },
  ],
};

beforeAll(async () => {
  env = await startBrokerEnv({ namespaces: ['attack'], policy });
  issuer = env.issuer;
  attackerKeys = await generateKeyPair('RS256', { extractable: true });
  broker = await env.startInProcessBroker();
});

afterAll(async () => {
  const left = await cleanupCountingLeaks(
    env,
    (leaked) =>
      `attack corpus: inputs tried ${counts.inputs}, refused ${counts.refused}, objects leaked ${leaked}`,
  );
  expect(left).toEqual([]);
});

// ---- Building hostile tokens ----

const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
const parts = (jwt: string) => jwt.split('.') as [string, string, string];
/** Same payload and signature, another protected header: the signature no longer covers it. */
const withHeader = (jwt: string, header: Record<string, unknown>) => {
  const [, p, s] = parts(jwt);
  return `${enc(header)}.${p}.${s}`;
};
const withPayload = (jwt: string, payload: Record<string, unknown>) => {
  const [h, , s] = parts(jwt);
  return `${h}.${enc(payload)}.${s}`;
};
const sign = (claims: Record<string, unknown> = {}, options: SignOptions = {}) =>
  issuer.sign(claims as Partial<GitHubClaims>, options);

/** Signs any header and payload with the real issuer key, bypassing jose's own sanity checks. */
async function rawSign(header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  const input = `${enc(header)}.${enc(payload)}`;
  const sig = await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', issuer.privateKey, Buffer.from(input));
  return `${input}.${base64url.encode(new Uint8Array(sig))}`;
}
const realHeader = (extra: Record<string, unknown>) => ({
  alg: 'RS256',
  typ: 'JWT',
  kid: issuer.kid,
  ...extra,
});

/** A complete, well-formed GitHub token signed by the attacker's own key. */
async function signedByAttacker(header: Record<string, unknown> = {}): Promise<string> {
  const payload = decodeJwt(await sign());
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: issuer.kid, ...header })
    .sign(attackerKeys.privateKey);
}

let nested = '"123456789"';
for (let i = 0; i < 1500; i += 1) nested = `[${nested}]`;
const deeplyNested = JSON.parse(nested) as unknown;

// ---- The corpus ----

interface Row {
  name: string;
  status: 400 | 401 | 403 | 404 | 413;
  /** The reason the audit line must carry. */
  reason: string;
  send: () => Promise<BrokerResponse<ErrorResponse>>;
}

const body = () => ({ namespace: env.ns, role: 'viewer' });
const post = (opts: BrokerRequestOptions) =>
  broker.request<ErrorResponse>('POST', '/v1/exchange', { body: body(), ...opts });
/** A token built by `make`, exchanged for the default (honest) request body. */
const tokenRow = (
  name: string,
  status: Row['status'],
  reason: string,
  make: () => Promise<string> | string,
): Row => ({ name, status, reason, send: async () => post({ token: await make() }) });
/** A token with these claims (signed by the real issuer key) that the policy must refuse. */
const claimsRow = (
  name: string,
  reason: string,
  claims: Record<string, unknown>,
  status: Row['status'] = 403,
  request: Record<string, unknown> = {},
): Row => ({
  name,
  status,
  reason,
  send: async () => post({ token: await sign(claims), body: { ...body(), ...request } }),
});

let replayedJwt = '';
const prodClaims = {
  environment: 'production',
  event_name: 'workflow_dispatch',
  job_workflow_ref: 'octo-org/deploy-workflows/.github/workflows/deploy.yml@refs/tags/v1.2.0',
  // Not main: only the production-deploy rule may match these claims.
  ref: 'refs/heads/deploy-prod',
};

const rows: Row[] = [
  // JWT forgeries and malformations
  tokenRow('signature bit-flipped', 401, 'jwt_signature', async () => {
    const [h, p, s] = parts(await sign());
    const sig = Buffer.from(s, 'base64url');
    sig[0] = sig[0]! ^ 0x01;
    return `${h}.${p}.${base64url.encode(sig)}`;
  }),
  tokenRow('signed by an attacker key under the real kid', 401, 'jwt_signature', () => signedByAttacker()),
  tokenRow('payload swapped to another repository, signature kept', 401, 'jwt_signature', async () => {
    const jwt = await sign();
    return withPayload(jwt, { ...decodeJwt(jwt), repository_id: '1' });
  }),
  tokenRow('signature of another valid token spliced in', 401, 'jwt_signature', async () => {
    const [h, p] = parts(await sign());
    return `${h}.${p}.${parts(await sign())[2]}`;
  }),
  tokenRow('alg none, no signature', 401, 'jwt_alg', async () => {
    const jwt = await sign();
    return `${enc({ alg: 'none', typ: 'JWT' })}.${parts(jwt)[1]}.`;
  }),
  tokenRow('HS256 keyed with the public key (algorithm confusion)', 401, 'jwt_alg', async () => {
    const pem = await exportSPKI(
      (await importJWK(issuer.publicJwk, 'RS256', { extractable: true })) as Parameters<typeof exportSPKI>[0],
    );
    return new SignJWT(decodeJwt(await sign()))
      .setProtectedHeader({ alg: 'HS256', kid: issuer.kid })
      .sign(new TextEncoder().encode(pem));
  }),
  tokenRow('alg relabelled RS384', 401, 'jwt_alg', async () =>
    withHeader(await sign(), { alg: 'RS384', kid: issuer.kid, typ: 'JWT' }),
  ),
  tokenRow('alg in lower case (rs256)', 401, 'jwt_alg', async () =>
    withHeader(await sign(), { alg: 'rs256', kid: issuer.kid, typ: 'JWT' }),
  ),
  tokenRow('two segments only', 400, 'jwt_malformed', async () =>
    parts(await sign())
      .slice(0, 2)
      .join('.'),
  ),
  tokenRow('four segments', 400, 'jwt_malformed', async () => `${await sign()}.AAAA`),
  tokenRow('standard base64 alphabet (+ / =) instead of base64url', 400, 'jwt_malformed', async () => {
    const [h, p, s] = parts(await sign());
    return `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}+/=`;
  }),
  tokenRow('header is not JSON', 400, 'jwt_malformed', async () => {
    const [, p, s] = parts(await sign());
    return `${base64url.encode('{"alg":"RS256",')}.${p}.${s}`;
  }),
  tokenRow('payload is a JSON array', 400, 'jwt_malformed', async () => {
    const [h, , s] = parts(await sign());
    return `${h}.${enc([{ iss: issuer.issuer }])}.${s}`;
  }),
  tokenRow('huge token (9 KiB claim)', 400, 'jwt_oversized', () => sign({ padding: 'x'.repeat(9 * 1024) })),
  tokenRow('deeply nested repository_id (1500 levels of arrays)', 401, 'jwt_claims', () =>
    sign({ repository_id: deeplyNested }),
  ),
  {
    name: 'no Authorization header',
    status: 401,
    reason: 'missing_bearer_token',
    send: () => post({}),
  },
  {
    name: 'Basic instead of Bearer',
    status: 401,
    reason: 'missing_bearer_token',
    send: async () => post({ headers: { authorization: `Basic ${await sign()}` } }),
  },
  {
    name: 'two bearer tokens in one header',
    status: 401,
    reason: 'missing_bearer_token',
    send: async () => post({ headers: { authorization: `Bearer ${await sign()} ${await sign()}` } }),
  },
  // Header tricks: keys named by the token itself are never fetched or trusted
  tokenRow('jku pointing at an attacker JWKS', 401, 'jwt_header', () =>
    signedByAttacker({ jku: 'https://attacker.example/jwks.json' }),
  ),
  tokenRow('x5u pointing at an attacker certificate', 401, 'jwt_header', () =>
    signedByAttacker({ x5u: 'https://attacker.example/cert.pem' }),
  ),
  tokenRow('embedded jwk of the attacker key', 401, 'jwt_header', async () =>
    signedByAttacker({ jwk: await exportJWK(attackerKeys.publicKey) }),
  ),
  tokenRow('embedded x5c chain', 401, 'jwt_header', () => signedByAttacker({ x5c: ['MIIBattacker'] })),
  tokenRow('kid path traversal', 401, 'jwt_unknown_kid', () =>
    sign({}, { header: { kid: '../../../../etc/passwd' } }),
  ),
  tokenRow('kid SQL injection', 401, 'jwt_unknown_kid', () => sign({}, { header: { kid: "x' OR '1'='1" } })),
  tokenRow('kid is a number', 401, 'jwt_header', () => sign({}, { header: { kid: 1 } })),
  tokenRow('kid missing', 401, 'jwt_header', async () =>
    withHeader(await sign(), { alg: 'RS256', typ: 'JWT' }),
  ),
  tokenRow('crit names an unknown extension', 401, 'jwt_header', async () =>
    rawSign(realHeader({ crit: ['x-policy'], 'x-policy': 'admin' }), decodeJwt(await sign())),
  ),
  tokenRow('unencoded payload (b64 false, crit)', 401, 'jwt_header', async () =>
    rawSign(realHeader({ b64: false, crit: ['b64'] }), decodeJwt(await sign())),
  ),
  tokenRow('typ at+jwt', 401, 'jwt_header', () => sign({}, { header: { typ: 'at+jwt' } })),
  // Issuer, audience, time
  tokenRow('issuer with a trailing slash', 401, 'jwt_issuer', () =>
    sign({}, { issuer: `${issuer.issuer}/` }),
  ),
  tokenRow("GitHub's real issuer, signed by our test key", 401, 'jwt_issuer', () =>
    sign({}, { issuer: 'https://token.actions.githubusercontent.com' }),
  ),
  tokenRow("audience of another service (GitHub's default)", 401, 'jwt_audience', () =>
    sign({}, { audience: 'https://github.com/octo-org' }),
  ),
  tokenRow('audience differing only in case', 401, 'jwt_audience', () =>
    sign({}, { audience: 'K8S-Ephemeral-Access' }),
  ),
  tokenRow('expired two minutes ago', 401, 'jwt_expired', () =>
    sign({}, { expiresIn: -120, issuedAt: -420, notBefore: -430 }),
  ),
  tokenRow('not valid for five more minutes', 401, 'jwt_not_yet_valid', () =>
    sign({}, { notBefore: 300, expiresIn: 600 }),
  ),
  tokenRow('issued in the future', 401, 'jwt_not_yet_valid', () =>
    sign({}, { issuedAt: 600, expiresIn: 900 }),
  ),
  tokenRow('lives two hours', 401, 'jwt_lifetime', () => sign({}, { expiresIn: 7200 })),
  tokenRow('exp as a string', 401, 'jwt_claims', async () =>
    rawSign(realHeader({}), { ...decodeJwt(await sign()), exp: '9999999999' }),
  ),
  tokenRow('no jti', 401, 'jwt_claims', () => sign({ jti: undefined })),
  // Claim type confusion: IDs are canonical decimal strings, nothing else
  claimsRow('repository_id as a number', 'jwt_claims', { repository_id: Number(REPO_ID) }, 401),
  claimsRow('repository_owner_id as an array', 'jwt_claims', { repository_owner_id: [OWNER_ID] }, 401),
  claimsRow('run_id as an object', 'jwt_claims', { run_id: { id: '1' } }, 401),
  claimsRow('repository_id with a leading zero', 'jwt_claims', { repository_id: `0${REPO_ID}` }, 401),
  claimsRow('repository_id with a trailing space', 'jwt_claims', { repository_id: `${REPO_ID} ` }, 401),
  claimsRow('repository_id in exponent notation', 'jwt_claims', { repository_id: '1.23456789e8' }, 401),
  claimsRow('ref as an array of refs', 'jwt_claims', { ref: ['refs/heads/main'] }, 401),
  claimsRow('ref with a newline (log forging)', 'jwt_claims', { ref: 'refs/heads/main\nrefs/heads/x' }, 401),
  claimsRow('event_name null', 'jwt_claims', { event_name: null }, 401),
  // Names are display values: look-alikes, case changes and forks never match an ID rule
  claimsRow('same repository name, a fork repository_id', 'no_matching_rule', {
    repository_id: ATTACKER_REPO_ID,
  }),
  claimsRow('Cyrillic look-alike owner name, attacker IDs', 'no_matching_rule', {
    repository: 'оcto-org/octo-repo',
    repository_owner: 'оcto-org',
    repository_id: ATTACKER_REPO_ID,
    repository_owner_id: ATTACKER_OWNER_ID,
  }),
  claimsRow('repository name in upper case, attacker IDs', 'no_matching_rule', {
    repository: 'OCTO-ORG/OCTO-REPO',
    repository_id: ATTACKER_REPO_ID,
  }),
  claimsRow('right repository_id under another owner id', 'no_matching_rule', {
    repository_owner_id: ATTACKER_OWNER_ID,
  }),
  claimsRow('ref in upper case (refs/heads/MAIN)', 'no_matching_rule', { ref: 'refs/heads/MAIN' }),
  claimsRow('ref with a Cyrillic а', 'no_matching_rule', { ref: 'refs/heads/mаin' }),
  claimsRow('ref with a zero-width space', 'no_matching_rule', { ref: 'refs/heads/ma\u200bin' }),
  claimsRow('ref in fullwidth letters', 'no_matching_rule', { ref: 'refs/heads/ｍａｉｎ' }),
  claimsRow(
    'environment Production (case)',
    'no_matching_rule',
    { ...prodClaims, environment: 'Production' },
    403,
    {
      role: 'deployer',
    },
  ),
  claimsRow(
    'environment with a trailing space',
    'no_matching_rule',
    { ...prodClaims, environment: 'production ' },
    403,
    {
      role: 'deployer',
    },
  ),
  // Ref tricks and glob edge cases
  claimsRow('refs/heads/main/../x', 'no_matching_rule', { ref: 'refs/heads/main/../x' }),
  claimsRow('glob escape with ..', 'no_matching_rule', { ref: 'refs/heads/release/../../heads/main' }),
  claimsRow('glob * does not cross /', 'no_matching_rule', { ref: 'refs/heads/release/a/b' }),
  claimsRow('glob * with an empty segment', 'no_matching_rule', { ref: 'refs/heads/release//x' }),
  claimsRow('glob with a trailing slash', 'no_matching_rule', { ref: 'refs/heads/release/' }),
  claimsRow('glob * needs one segment (refs/heads/release)', 'no_matching_rule', {
    ref: 'refs/heads/release',
  }),
  claimsRow('glob over a dot-component', 'no_matching_rule', { ref: 'refs/heads/release/.hidden' }),
  claimsRow('glob over a .lock component', 'no_matching_rule', { ref: 'refs/heads/release/x.lock' }),
  claimsRow('glob over git revision syntax (@{-1})', 'no_matching_rule', { ref: 'refs/heads/release/@{-1}' }),
  claimsRow('glob over ~ and ^', 'no_matching_rule', { ref: 'refs/heads/release/v1~1^2' }),
  claimsRow('glob prefix v* against release-v1', 'no_matching_rule', { ref: 'refs/tags/release-v1' }),
  claimsRow('tag glob smuggling a branch', 'no_matching_rule', { ref: 'refs/tags/v1/../../heads/main' }),
  claimsRow('short ref without refs/', 'no_matching_rule', { ref: 'heads/main' }),
  claimsRow('pull request merge ref', 'no_matching_rule', { ref: 'refs/pull/42/merge' }),
  // Events and forks
  claimsRow('pull_request_target on main', 'no_matching_rule', { event_name: 'pull_request_target' }),
  claimsRow('pull_request from a fork', 'no_matching_rule', {
    event_name: 'pull_request',
    ref: 'refs/pull/7/merge',
    head_ref: 'main',
    base_ref: 'main',
  }),
  claimsRow('workflow_run triggered by a fork', 'no_matching_rule', { event_name: 'workflow_run' }),
  claimsRow('event name in another case (Push)', 'no_matching_rule', { event_name: 'Push' }),
  claimsRow('self-hosted runner', 'no_matching_rule', { runner_environment: 'self-hosted' }),
  claimsRow(
    'reusable workflow from another owner',
    'no_matching_rule',
    {
      ...prodClaims,
      job_workflow_ref: 'evil-org/deploy-workflows/.github/workflows/deploy.yml@refs/tags/v1',
    },
    403,
    { role: 'deployer' },
  ),
  claimsRow(
    'reusable workflow at a branch, not a tag',
    'no_matching_rule',
    {
      ...prodClaims,
      job_workflow_ref: 'octo-org/deploy-workflows/.github/workflows/deploy.yml@refs/heads/main',
    },
    403,
    { role: 'deployer' },
  ),
  claimsRow(
    'reusable workflow path with ..',
    'no_matching_rule',
    {
      ...prodClaims,
      job_workflow_ref: 'octo-org/deploy-workflows/.github/workflows/x/../deploy.yml@refs/tags/v1',
    },
    403,
    { role: 'deployer' },
  ),
  // The request itself
  claimsRow('namespace the policy does not grant', 'namespace_not_allowed', {}, 403, {
    namespace: 'kube-system',
  }),
  claimsRow('role the rule does not list', 'role_not_allowed', { ref: 'refs/heads/release/1.x' }, 403, {
    role: 'deployer',
  }),
  claimsRow('unknown role cluster-admin', 'role_not_allowed', {}, 403, { role: 'cluster-admin' }),
  claimsRow('TTL above the rule maximum', 'ttl_exceeds_rule', {}, 403, { ttlSeconds: 901 }),
  claimsRow('TTL below the minimum', 'ttl_too_short', {}, 400, { ttlSeconds: 30 }),
  claimsRow('fractional TTL', 'invalid_request', {}, 400, { ttlSeconds: 600.5 }),
  claimsRow('TTL as a string', 'invalid_request', {}, 400, { ttlSeconds: '600' }),
  claimsRow('namespace in upper case', 'invalid_request', {}, 400, { namespace: 'Kube-System' }),
  claimsRow('role with path characters', 'invalid_request', {}, 400, { role: '../../clusterroles/admin' }),
  claimsRow('namespace deeply nested', 'invalid_request', {}, 400, { namespace: deeplyNested }),
  {
    name: '__proto__ field (prototype pollution)',
    status: 400,
    reason: 'invalid_request',
    send: async () =>
      post({
        token: await sign(),
        rawBody: `{"namespace":"${env.ns}","role":"viewer","__proto__":{"admin":true}}`,
      }),
  },
  {
    name: 'form-encoded body',
    status: 400,
    reason: 'unsupported_media_type',
    send: async () =>
      post({
        token: await sign(),
        rawBody: `namespace=${env.ns}&role=viewer`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
  },
  {
    name: 'truncated JSON',
    status: 400,
    reason: 'invalid_json',
    send: async () => post({ token: await sign(), rawBody: `{"namespace":"${env.ns}","role":` }),
  },
  {
    name: 'body over the limit (streamed, chunked)',
    status: 413,
    reason: 'body_too_large',
    send: async () =>
      post({
        token: await sign(),
        rawBody: JSON.stringify({ ...body(), pad: 'x'.repeat(40_000) }),
        headers: { 'transfer-encoding': 'chunked' },
      }),
  },
  {
    name: 'content-length over the limit',
    status: 413,
    reason: 'body_too_large',
    send: async () =>
      post({ token: await sign(), rawBody: JSON.stringify({ ...body(), pad: 'x'.repeat(20_000) }) }),
  },
  tokenRow('a JWT replayed after its grant was revoked', 401, 'jwt_replayed', () => replayedJwt),
  // A repeated key: JSON.parse keeps the last, anything reading the first sees another request
  {
    name: 'namespace twice, the granted one last',
    status: 400,
    reason: 'invalid_request',
    send: async () =>
      post({
        token: await sign(),
        rawBody: `{"namespace":"kube-system","role":"viewer","namespace":"${env.ns}"}`,
      }),
  },
  {
    name: 'role twice, once spelled with a \\u escape',
    status: 400,
    reason: 'invalid_request',
    send: async () =>
      post({
        token: await sign(),
        rawBody: `{"namespace":"${env.ns}","role":"deployer","\\u0072ole":"viewer"}`,
      }),
  },
  // Characters that reorder or split audit lines and annotations (Trojan Source, U+2028)
  claimsRow('ref with a right-to-left override', 'jwt_claims', { ref: 'refs/heads/\u202eniam' }, 401),
  claimsRow(
    'workflow with a line separator forging an audit line',
    'jwt_claims',
    { workflow: 'deploy\u2028{"type":"audit","action":"revocation"}' },
    401,
  ),
  claimsRow('actor wrapped in bidi isolates', 'jwt_claims', { actor: 'octo\u2066cat\u2069' }, 401),
  claimsRow('repository with a paragraph separator', 'jwt_claims', { repository: 'octo-org/\u2029x' }, 401),
  claimsRow('sha with a right-to-left mark', 'jwt_claims', { sha: `${'a'.repeat(39)}\u200f` }, 401),
  // Revocation: cheap checks before any TokenReview, and only the grant's own job
  {
    name: 'revoke with a bearer that is not a JWT',
    status: 400,
    reason: 'jwt_malformed',
    send: () =>
      broker.request<ErrorResponse>('DELETE', `/v1/grants/${target.grantId}`, { token: 'not-a-jwt' }),
  },
  {
    name: 'revoke with a Kubernetes-shaped token of another ServiceAccount',
    status: 404,
    reason: 'token_of_another_identity',
    send: () =>
      broker.request<ErrorResponse>('DELETE', `/v1/grants/${target.grantId}`, {
        token: `${enc({ alg: 'RS256' })}.${enc({
          sub: `system:serviceaccount:${env.ns}:default`,
          'kubernetes.io': { namespace: env.ns },
        })}.c2ln`,
      }),
  },
  {
    name: "revoke a sibling job's grant with this job's fresh JWT (same run)",
    status: 404,
    reason: 'grant_of_another_job',
    send: async () =>
      broker.request<ErrorResponse>('DELETE', `/v1/grants/${target.grantId}`, {
        token: await sign({ check_run_id: '1' }),
      }),
  },
];

/** A live grant the revocation rows aim at; revoked by its own token at the end. */
let target: ExchangeResponse;

async function expectGranted(jwt: string, request: Record<string, unknown>): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', { token: jwt, body: request });
  expect(r.status).toBe(200);
  return r.body;
}

async function revoke(g: ExchangeResponse): Promise<void> {
  const r = await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token });
  expect(r.status).toBe(200);
}

describe('positive controls: honest tokens for each probed rule are granted', () => {
  test('main push, release glob, tag glob and the pinned production workflow all grant', async () => {
    replayedJwt = await sign();
    const granted = [
      await expectGranted(replayedJwt, body()),
      await expectGranted(await sign({ ref: 'refs/heads/release/1.x' }), body()),
      await expectGranted(await sign({ ref: 'refs/tags/v2.0.1' }), body()),
      await expectGranted(await sign(prodClaims), { ...body(), role: 'deployer' }),
    ];
    counts.inputs += granted.length;
    for (const g of granted) await revoke(g);
    expect(managedObjects([env.ns])).toEqual([]);
  });
});

describe('attack corpus: refused, generic answer, precise audit reason, nothing created', () => {
  beforeAll(async () => {
    target = await expectGranted(await sign(), body());
    // The self-revoke pair is created just after the answer; each row compares snapshots.
    await waitFor('the target grant complete', () =>
      managedObjects([env.ns]).filter((o) => o.includes(target.grantId)).length === 4 ? true : undefined,
    );
  });

  test('the corpus has at least 40 named inputs', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40);
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
  });

  test.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    counts.inputs += 1;
    const before = managedObjects([env.ns]);
    const r = await row.send();
    expect(r.status).toBe(row.status);
    counts.refused += 1;

    // The client learns the class of refusal and nothing else.
    const err = r.body.error;
    expect(Object.keys(r.body)).toEqual(['error']);
    expect(Object.keys(err).sort()).toEqual(['code', 'message', 'requestId']);
    expect(err.message).toBe(CLIENT_MESSAGE[err.code as ErrorCode]);
    expect(r.text).not.toContain(row.reason);
    expect(r.headers['x-request-id']).toBe(err.requestId);

    // The audit line of this very request says exactly why.
    const denial = broker.auditLines.find((l) => l.requestId === err.requestId);
    expect(denial).toMatchObject({ action: 'denial', reason: row.reason, code: err.code });

    expect(managedObjects([env.ns])).toEqual(before);
  });

  test.each(['%', '%zz', '%E0%A4%A', '%ff%fe'])(
    'revoke path with a malformed escape (%s) is a 404 like any unknown grant, not a 500',
    async (segment) => {
      counts.inputs += 1;
      const r = await broker.request<ErrorResponse>('DELETE', `/v1/grants/${segment}`, {
        token: await sign(),
      });
      expect(r.status).toBe(404);
      expect(r.body.error.message).toBe(CLIENT_MESSAGE.ERR_NOT_FOUND);
      counts.refused += 1;
    },
  );

  test('the broker is healthy after the corpus and an honest token still works', async () => {
    expect((await broker.request('GET', '/healthz')).status).toBe(200);
    await revoke(target);
    const g = await expectGranted(await sign(), body());
    await revoke(g);
  });
});

// Issue 24: what a real deployer grant of this broker tries in the cluster with its own token. Each
// is refused by RBAC (the vetted role does not grant it) or by the admission guard, and leaves nothing.
describe('grant-side routes: what a deployer grant tries with its own token', () => {
  let deployer: ExchangeResponse;
  let kubeconfig: { path: string; cleanup: () => void };
  beforeAll(async () => {
    deployer = await expectGranted(await sign(), { ...body(), role: 'deployer' });
    kubeconfig = tokenKubeconfig(deployer.token, env.ns);
  });
  afterAll(async () => {
    kubeconfig.cleanup();
    await revoke(deployer);
  });

  const statefulSet = (name: string) => ({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name },
    spec: {
      serviceName: name,
      replicas: 0,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'a', image: 'r.invalid/a:1' }] },
      },
    },
  });
  const routes: [string, (name: string) => [args: string[], input?: unknown], RegExp][] = [
    [
      'a Deployment whose pods take the system-node-critical priority class',
      (name) => [
        ['apply', '-f', '-'],
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name },
          spec: {
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                priorityClassName: 'system-node-critical',
                containers: [{ name: 'a', image: 'r.invalid/a:1' }],
              },
            },
          },
        },
      ],
      /k8s-ea-grant-guard.*may not use a system- priority class/s,
    ],
    [
      'a forged ControllerRevision (the StatefulSet controller rebuilds pods from it)',
      (name) => [
        ['create', '-f', '-'],
        { apiVersion: 'apps/v1', kind: 'ControllerRevision', metadata: { name }, revision: 1, data: {} },
      ],
      /forbidden/i,
    ],
    [
      'statefulsets/status naming another revision',
      (name) => [
        [
          'patch',
          'statefulset',
          name,
          '--subresource=status',
          '--type=merge',
          '-p',
          '{"status":{"currentRevision":"x"}}',
        ],
      ],
      /forbidden/i,
    ],
    [
      'services/status with a load-balancer address (CVE-2020-8554)',
      (name) => [
        [
          'patch',
          'service',
          name,
          '--subresource=status',
          '--type=merge',
          '-p',
          '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}}}',
        ],
      ],
      /forbidden/i,
    ],
  ];

  test.each(routes)('%s is refused', (_name, make, message) => {
    counts.inputs += 1;
    const name = uniqueName('route');
    // The objects a status write aims at exist, made by the grant within its role.
    expect(kubectl(kubeconfig.path, ['apply', '-f', '-'], JSON.stringify(statefulSet(name))).status).toBe(0);
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
    };
    expect(kubectl(kubeconfig.path, ['apply', '-f', '-'], JSON.stringify(service)).status).toBe(0);
    const [args, input] = make(name);
    const r = kubectl(kubeconfig.path, args, input === undefined ? undefined : JSON.stringify(input));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
    counts.refused += 1;
  });
});

// The gateway's routes run against a gateway-mode broker of their own (support/gateway-attacks.ts).
gatewayAttackCorpus();
