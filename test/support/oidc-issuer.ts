// A local OIDC issuer that stands in for GitHub Actions' token service in tests and the demo:
// discovery document, JWKS, RS256 signing, and the runner's ID-token endpoint that
// core.getIDToken() calls (ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN).
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey, type JWTPayload } from 'jose';

export interface GitHubClaims extends JWTPayload {
  repository: string;
  repository_id: string;
  repository_owner: string;
  repository_owner_id: string;
  ref: string;
  event_name: string;
  run_id: string;
  run_attempt: string;
  workflow: string;
  job_workflow_ref: string;
  sha: string;
  actor: string;
  runner_environment: string;
  environment?: string;
  [claim: string]: unknown;
}

export interface SignOptions {
  audience?: string | string[];
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  notBefore?: number;
  issuedAt?: number;
  header?: Record<string, unknown>;
  /** Claims to drop from the defaults. */
  omit?: string[];
  issuer?: string;
}

export interface OidcIssuer {
  issuer: string;
  /** For ACTIONS_ID_TOKEN_REQUEST_URL. */
  idTokenRequestUrl: string;
  /** For ACTIONS_ID_TOKEN_REQUEST_TOKEN. */
  idTokenRequestToken: string;
  kid: string;
  publicJwk: JWK;
  privateKey: CryptoKey;
  /** Claims that core.getIDToken() tokens carry; tests may change them. */
  claims: GitHubClaims;
  sign(claims?: Partial<GitHubClaims>, options?: SignOptions): Promise<string>;
  /** Counts JWKS fetches, so tests can see the broker's cache at work. */
  jwksRequests(): number;
  /** Makes the JWKS endpoint fail (503) until set back to true. */
  setJwksAvailable(available: boolean): void;
  /** Replaces the signing key (a new kid), as a key rotation would. */
  rotateKey(): Promise<void>;
  close(): Promise<void>;
}

export function defaultClaims(overrides: Partial<GitHubClaims> = {}): GitHubClaims {
  return {
    repository: 'octo-org/octo-repo',
    repository_id: '123456789',
    repository_owner: 'octo-org',
    repository_owner_id: '987654',
    ref: 'refs/heads/main',
    ref_type: 'branch',
    event_name: 'push',
    run_id: String(1_000_000 + Math.floor(Math.random() * 1_000_000)),
    run_number: '7',
    run_attempt: '1',
    // The job within the run; sibling jobs of one run differ here.
    check_run_id: String(30_000_000 + Math.floor(Math.random() * 1_000_000)),
    workflow: 'deploy',
    workflow_ref: 'octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main',
    job_workflow_ref: 'octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main',
    sha: 'a'.repeat(40),
    actor: 'octocat',
    actor_id: '583231',
    runner_environment: 'github-hosted',
    sub: 'repo:octo-org/octo-repo:ref:refs/heads/main',
    ...overrides,
  };
}

/**
 * Listens on 127.0.0.1, or on listener, a listening socket named by its own address (node.ts
 * listenInNode: one inside the test node's network namespace, which its pods reach). tls: serve
 * https with this key and certificate (the broker takes http only from a loopback issuer).
 */
export async function startOidcIssuer(
  options: {
    defaultAudience?: string;
    listener?: NetServer;
    tls?: { key: Buffer; cert: Buffer };
  } = {},
): Promise<OidcIssuer> {
  const requestToken = randomUUID();
  let keys = await generateKeyPair('RS256', { extractable: true });
  let kid = randomUUID();
  let jwk: JWK = { ...(await exportJWK(keys.publicKey)), kid, alg: 'RS256', use: 'sig' };
  let jwksCount = 0;
  let jwksAvailable = true;
  let issuer = '';

  const handler: RequestListener = (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks`,
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['id_token'],
        subject_types_supported: ['public', 'pairwise'],
        claims_supported: Object.keys(defaultClaims()),
      });
    }
    if (url.pathname === '/.well-known/jwks') {
      jwksCount += 1;
      if (!jwksAvailable) return json(503, { message: 'unavailable' });
      return json(200, { keys: [jwk] });
    }
    if (url.pathname === '/_apis/token') {
      if (req.headers.authorization !== `Bearer ${requestToken}`)
        return json(401, { message: 'bad runtime token' });
      const audience =
        url.searchParams.get('audience') ?? options.defaultAudience ?? 'https://github.com/octo-org';
      void api.sign({}, { audience }).then((value) => json(200, { value }));
      return;
    }
    json(404, { message: 'not found' });
  };
  const server: Server = options.tls ? createHttpsServer(options.tls, handler) : createServer(handler);
  if (options.listener) await new Promise<void>((r) => server.listen(options.listener, r));
  else await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { address, port } = server.address() as AddressInfo;
  issuer = `${options.tls ? 'https' : 'http'}://${address}:${port}`;

  const api: OidcIssuer = {
    issuer,
    idTokenRequestUrl: `${issuer}/_apis/token?api-version=2.0`,
    idTokenRequestToken: requestToken,
    get kid() {
      return kid;
    },
    get publicJwk() {
      return jwk;
    },
    get privateKey() {
      return keys.privateKey;
    },
    claims: defaultClaims(),
    async sign(claims = {}, o = {}) {
      const payload: Record<string, unknown> = { ...api.claims, ...claims };
      for (const c of o.omit ?? []) delete payload[c];
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ jti: randomUUID(), ...payload })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT', ...(o.header ?? {}) })
        .setIssuer(o.issuer ?? issuer)
        .setAudience(o.audience ?? options.defaultAudience ?? 'k8s-ephemeral-access')
        .setIssuedAt(now + (o.issuedAt ?? 0))
        .setNotBefore(now + (o.notBefore ?? -5))
        .setExpirationTime(now + (o.expiresIn ?? 300));
      return jwt.sign(keys.privateKey);
    },
    jwksRequests: () => jwksCount,
    setJwksAvailable(available) {
      jwksAvailable = available;
    },
    async rotateKey() {
      keys = await generateKeyPair('RS256', { extractable: true });
      kid = randomUUID();
      jwk = { ...(await exportJWK(keys.publicKey)), kid, alg: 'RS256', use: 'sig' };
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return api;
}
