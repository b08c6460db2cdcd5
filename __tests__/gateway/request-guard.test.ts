// What the gateway refuses before looking at a token, what it passes on, and how it reads a
// request's verb and namespace for the audit line. The same inputs against the running gateway
// are in gateway.cluster.test.ts; here, the rules themselves.
import { describe, expect, test } from '@jest/globals';
import { describeKubeRequest, isLongRunning } from '../../src/broker/gateway/kube-request.js';
import {
  bearerTokenOf,
  checkHeaders,
  checkTarget,
  forwardedRequestHeaders,
  forwardedResponseHeaders,
} from '../../src/broker/gateway/request-guard.js';
import { TokenReviewCache } from '../../src/broker/gateway/token-review-cache.js';

describe('checkTarget', () => {
  test.each([
    ['/api/v1/namespaces/ci/configmaps?labelSelector=app%3Dweb&watch=1', true],
    ['/apis/apps/v1/namespaces/ci/deployments/web', true],
    ['/api', true],
    ['/version', true],
    ['/openapi/v3/apis/apps/v1?hash=ABC', true],
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregate-to-view', true],
    ['http://evil/api/v1', false],
    ['//evil/api/v1', false],
    ['*', false],
    ['/api/v1/../../healthz', false],
    ['/api/v1/./pods', false],
    ['/api/v1/%2e%2e/x', false],
    ['/api/v1/namespaces%2Fci', false],
    ['/api//v1', false],
    ['/api/v1\\pods', false],
    ['/api/v1/pods?x=1#frag', false],
    ['/api/v1/pods?x=a b', false],
    ['/healthz', false],
    ['/metrics', false],
    ['/logs/', false],
    ['/api/v1/namespaces/ci/pods/p/exec', false],
    ['/api/v1/namespaces/ci/pods/p/attach', false],
    ['/api/v1/namespaces/ci/pods/p/portforward', false],
    // By the subresource the API server parses: a trailing slash or more segments are still exec.
    ['/api/v1/namespaces/ci/pods/p/exec/', false],
    ['/api/v1/namespaces/ci/pods/p/attach/', false],
    ['/api/v1/namespaces/ci/pods/p/portforward/x', false],
    ['/api/v1/namespaces/ci/pods/p/exec?command=sh', false],
    // The API server's proxy, by subresource and by the verb prefix.
    ['/api/v1/namespaces/ci/pods/p/proxy', false],
    ['/api/v1/namespaces/ci/services/web:80/proxy/', false],
    ['/api/v1/nodes/n1/proxy/configz', false],
    ['/api/v1/proxy/namespaces/ci/pods/p', false],
    // A resource or object that is merely named like one is not refused.
    ['/api/v1/namespaces/ci/configmaps/exec', true],
    ['/api/v1/namespaces/exec/configmaps', true],
    ['/apis/example.com/v1/exec', true],
  ])('%s → accepted %s', (url, accepted) => {
    expect('reason' in checkTarget('GET', url)).toBe(!accepted);
  });

  test('exec is refused as a connection upgrade, the proxy as the proxy', () => {
    expect(checkTarget('POST', '/api/v1/namespaces/ci/pods/p/exec/')).toMatchObject({
      status: 403,
      reason: 'upgrade_refused',
    });
    expect(checkTarget('GET', '/api/v1/namespaces/ci/services/s/proxy/')).toMatchObject({
      status: 403,
      reason: 'proxy_refused',
    });
  });

  test('methods the API does not use are refused', () => {
    expect(checkTarget('CONNECT', '/api')).toMatchObject({ status: 400 });
    expect(checkTarget('TRACE', '/api')).toMatchObject({ status: 400 });
  });
});

describe('checkHeaders', () => {
  const raw = (h: Record<string, string>) => Object.entries(h).flat();
  const check = (h: Record<string, string>) => checkHeaders(h, raw(h));
  test('plain requests pass; upgrades, impersonation and odd hosts do not', () => {
    expect(check({ host: 'gw.example.com:443' })).toBeUndefined();
    expect(check({ host: '[::1]:8444' })).toBeUndefined();
    expect(check({ host: 'gw', upgrade: 'SPDY/3.1', connection: 'Upgrade' })).toMatchObject({ status: 403 });
    expect(check({ host: 'gw', connection: 'keep-alive, Upgrade' })).toMatchObject({
      reason: 'upgrade_refused',
    });
    expect(check({ host: 'gw', 'impersonate-group': 'system:masters' })).toMatchObject({
      reason: 'header_refused',
    });
    expect(check({ host: 'user@gw' })).toMatchObject({ status: 400 });
    expect(check({ host: 'gw/x' })).toMatchObject({ status: 400 });
    expect(check({})).toMatchObject({ status: 400 });
    expect(checkHeaders({ host: 'gw' }, ['Host', 'gw', 'host', 'other'])).toMatchObject({ status: 400 });
  });
});

describe('bearerTokenOf', () => {
  test('exactly one Bearer header', () => {
    expect(bearerTokenOf(['Authorization', 'Bearer abc.def.ghi'])).toBe('abc.def.ghi');
    expect(bearerTokenOf([])).toMatchObject({ status: 401 });
    expect(bearerTokenOf(['authorization', 'Basic YTpi'])).toMatchObject({ status: 401 });
    expect(bearerTokenOf(['authorization', 'Bearer a', 'Authorization', 'Bearer b'])).toMatchObject({
      status: 401,
    });
    expect(bearerTokenOf(['authorization', 'Bearer a b'])).toMatchObject({ status: 401 });
  });
});

describe('forwarded headers', () => {
  test('requests keep content headers and lose every credential, cookie, impersonation and forwarding header', () => {
    const out = forwardedRequestHeaders({
      accept: 'application/json',
      'content-type': 'application/apply-patch+yaml',
      'content-length': '12',
      'user-agent': 'kubectl/v1.32',
      authorization: 'Bearer x',
      'proxy-authorization': 'Basic y',
      cookie: 'a=b',
      'impersonate-user': 'admin',
      'x-remote-user': 'admin',
      'x-remote-group': 'system:masters',
      'x-forwarded-for': '10.0.0.1',
      forwarded: 'for=10.0.0.1',
      host: 'evil',
      connection: 'x-remote-user',
      te: 'trailers',
    });
    expect(out).toEqual({
      accept: 'application/json',
      'content-type': 'application/apply-patch+yaml',
      'content-length': '12',
      'user-agent': 'kubectl/v1.32',
    });
    expect(forwardedRequestHeaders({ 'transfer-encoding': 'chunked' })).toEqual({
      'transfer-encoding': 'chunked',
    });
  });

  test('responses lose hop-by-hop headers and cookies', () => {
    expect(
      forwardedResponseHeaders({
        'content-type': 'application/json',
        'audit-id': 'a1',
        'transfer-encoding': 'chunked',
        connection: 'keep-alive',
        'set-cookie': ['x=y'],
      }),
    ).toEqual({ 'content-type': 'application/json', 'audit-id': 'a1' });
  });
});

describe('describeKubeRequest', () => {
  test.each([
    [
      'GET',
      '/api/v1/namespaces/ci/configmaps',
      '',
      { verb: 'list', namespace: 'ci', resource: 'configmaps' },
    ],
    ['GET', '/api/v1/namespaces/ci/configmaps', '?watch=true', { verb: 'watch', namespace: 'ci' }],
    ['GET', '/api/v1/watch/namespaces/ci/pods', '', { verb: 'watch', namespace: 'ci', resource: 'pods' }],
    ['GET', '/api/v1/namespaces/ci/pods/p/log', '', { verb: 'get', name: 'p', subresource: 'log' }],
    [
      'PATCH',
      '/apis/apps/v1/namespaces/ci/deployments/web',
      '',
      { verb: 'patch', resource: 'deployments', name: 'web' },
    ],
    ['DELETE', '/api/v1/namespaces/ci/configmaps', '', { verb: 'deletecollection' }],
    ['DELETE', '/api/v1/namespaces/ci/configmaps/x', '', { verb: 'delete' }],
    [
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      '',
      { verb: 'create', resource: 'selfsubjectreviews' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ci',
      '',
      { verb: 'get', namespace: 'ci', resource: 'namespaces', name: 'ci' },
    ],
    ['GET', '/version', '', { verb: 'get' }],
    // ?watch= as apimachinery converts a boolean: anything but "0" and "false" (any case) is true.
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=yes', { verb: 'watch', resource: 'pods' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=True', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=1', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=true', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=%74rue', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=FALSE', { verb: 'list' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=0', { verb: 'list' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=0&watch=1', { verb: 'list' }],
    // Go drops a pair holding ";" or a bad escape; the next "watch" counts.
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=0;x&watch=1', { verb: 'watch' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=1;x', { verb: 'list' }],
    ['GET', '/api/v1/namespaces/ci/pods', '?watch=%zz', { verb: 'list' }],
    // A named object is a get whatever ?watch says; the /watch/ prefix is a watch even when named.
    ['GET', '/api/v1/namespaces/ci/pods/p', '?watch=1', { verb: 'get', name: 'p' }],
    ['GET', '/api/v1/watch/namespaces/ci/pods/p', '', { verb: 'watch', name: 'p' }],
    // Trailing slashes do not count, as in the API server's splitPath.
    ['POST', '/api/v1/namespaces/ci/pods/p/exec/', '', { verb: 'create', subresource: 'exec' }],
    ['GET', '/api/v1/namespaces/ci/', '', { verb: 'get', resource: 'namespaces', name: 'ci' }],
    ['PUT', '/api/v1/namespaces/ci/finalize', '', { resource: 'namespaces', subresource: 'finalize' }],
    ['GET', '/api/v1/proxy/namespaces/ci/pods/p/x', '', { verb: 'proxy', name: 'p' }],
  ])('%s %s%s', (method, path, search, expected) => {
    expect(describeKubeRequest(method, path, search)).toMatchObject(expected);
  });

  test('the proxy verb has no subresource; a group version alone is no resource', () => {
    expect(describeKubeRequest('GET', '/api/v1/proxy/namespaces/ci/pods/p/x', '')).toEqual({
      verb: 'proxy',
      namespace: 'ci',
      resource: 'pods',
      name: 'p',
    });
    expect(describeKubeRequest('GET', '/apis/apps/v1', '')).toEqual({ verb: 'get' });
  });

  test('long-running as the API server counts it: watches and log streams', () => {
    const long = (method: string, path: string, search = '') =>
      isLongRunning(describeKubeRequest(method, path, search));
    expect(long('GET', '/api/v1/namespaces/ci/pods', '?watch=yes')).toBe(true);
    expect(long('GET', '/api/v1/watch/pods')).toBe(true);
    expect(long('GET', '/api/v1/namespaces/ci/pods/p/log', '?follow=true')).toBe(true);
    expect(long('GET', '/api/v1/namespaces/ci/pods')).toBe(false);
    expect(long('GET', '/api/v1/namespaces/ci/pods/p', '?watch=1')).toBe(false);
    expect(long('POST', '/api/v1/namespaces/ci/configmaps')).toBe(false);
  });
});

describe('TokenReviewCache', () => {
  const identity = { namespace: 'ci', name: 'gha-x', uid: 'u' };

  test('one review for concurrent and repeated calls; none cached when refused; bounded by the exp', async () => {
    let now = 0;
    let reviews = 0;
    let answer: typeof identity | undefined = identity;
    const cache = new TokenReviewCache(
      async () => {
        reviews += 1;
        return answer;
      },
      () => now,
    );
    await Promise.all([cache.identify('t1', 100_000), cache.identify('t1', 100_000)]);
    await cache.identify('t1', 100_000);
    expect(reviews).toBe(1);
    now = 60_000;
    await cache.identify('t1', 100_000);
    expect(reviews).toBe(2);
    // The token's own exp comes first.
    now = 99_999;
    await cache.identify('t1', 100_000);
    now = 100_000;
    await cache.identify('t1', 100_000);
    expect(reviews).toBe(3);
    answer = undefined;
    expect(await cache.identify('t2', 1e12)).toBeUndefined();
    expect(await cache.identify('t2', 1e12)).toBeUndefined();
    expect(reviews).toBe(5);
  });

  test('bounded in entries, oldest first out, keyed by a hash', async () => {
    const cache = new TokenReviewCache(
      async () => identity,
      () => 0,
      { ttlMs: 60_000, maxEntries: 3 },
    );
    for (const t of ['a', 'b', 'c', 'd']) await cache.identify(t, 1e12);
    expect(cache.size).toBe(3);
    expect(
      JSON.stringify([...(cache as unknown as { entries: Map<string, unknown> }).entries.keys()]),
    ).not.toMatch(/"[abcd]"/);
  });
});
