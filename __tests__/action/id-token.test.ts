// The action's own ID-token request against the local stand-in for the runner's token service.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { createIdTokenSource } from '../../src/action/id-token.js';
import { createNodeTransport } from '../../src/action/http-transport.js';
import { startOidcIssuer, type OidcIssuer } from '../../test/support/oidc-issuer.js';

let issuer: OidcIssuer;
let junk: Server;
let junkUrl: string;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  junk = createServer((_req, res) => res.end('<html>not json</html>'));
  await new Promise<void>((r) => junk.listen(0, '127.0.0.1', r));
  junkUrl = `http://127.0.0.1:${(junk.address() as AddressInfo).port}/token?x=1`;
});
afterAll(async () => {
  await issuer.close();
  await new Promise((r) => junk.close(r));
});

const source = (env: Record<string, string | undefined>) => createIdTokenSource(env, createNodeTransport());

describe('createIdTokenSource', () => {
  test('returns the runner service token for the requested audience', async () => {
    const jwt = await source({
      ACTIONS_ID_TOKEN_REQUEST_URL: issuer.idTokenRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: issuer.idTokenRequestToken,
    })('my-broker');
    const claims = decodeJwt(jwt);
    expect(claims.aud).toBe('my-broker');
    expect(claims.iss).toBe(issuer.issuer);
  });

  test('a refused request names the status, not the response body', async () => {
    await expect(
      source({
        ACTIONS_ID_TOKEN_REQUEST_URL: issuer.idTokenRequestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'wrong',
      })('a'),
    ).rejects.toThrow(/^the token service answered HTTP 401$/);
  });

  test('an answer without a token is an error', async () => {
    await expect(
      source({ ACTIONS_ID_TOKEN_REQUEST_URL: junkUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' })('a'),
    ).rejects.toThrow(/other than JSON/);
  });

  test('missing runner variables are an error before any request', async () => {
    await expect(source({})('a')).rejects.toThrow(/ACTIONS_ID_TOKEN_REQUEST_URL/);
  });
});
