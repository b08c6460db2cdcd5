// The discovery rewrite's parts without a cluster: which requests it covers, what it asks the API
// server for, and that the field is gone wherever it is nested. The real API server's answers
// through the real gateway are checked in gateway.cluster.test.ts.
import { describe, expect, test } from '@jest/globals';
import type { Dispatcher } from 'undici';
import {
  DISCOVERY_MAX_BYTES,
  discoveryRequestHeaders,
  isDiscoveryRequest,
  rewriteDiscovery,
  withoutServerAddresses,
} from '../../src/broker/gateway/discovery-rewrite.js';

const ADDRESS = [{ clientCIDR: '0.0.0.0/0', serverAddress: '10.0.0.1:6443' }];

describe('discovery rewrite', () => {
  test.each([
    ['GET', '/api', true],
    ['GET', '/api/', true],
    ['GET', '/apis', true],
    ['GET', '/apis/apps', true],
    ['GET', '/apis/apps/', true],
    ['HEAD', '/api', false],
    ['GET', '/api/v1', false],
    ['GET', '/apis/apps/v1', false],
    ['GET', '/api/v1/namespaces/a/configmaps', false],
    ['POST', '/api', false],
  ])('%s %s is a discovery request: %s', (method, path, expected) => {
    expect(isDiscoveryRequest(method, path)).toBe(expected);
  });

  test('asks for JSON only (protobuf dropped), uncompressed; other paths keep their headers', () => {
    const kubectl = {
      accept:
        'application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json',
      'accept-encoding': 'gzip',
      'user-agent': 'kubectl',
    };
    expect(discoveryRequestHeaders('GET', '/apis', kubectl)).toEqual({
      accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json',
      'user-agent': 'kubectl',
    });
    expect(discoveryRequestHeaders('GET', '/api', { accept: 'application/vnd.kubernetes.protobuf' })).toEqual(
      {
        accept: 'application/json',
      },
    );
    expect(discoveryRequestHeaders('GET', '/api/v1/pods', kubectl)).toBe(kubectl);
  });

  test('removes the field wherever it is nested, and nothing else', () => {
    const doc = {
      kind: 'APIGroupList',
      serverAddressByClientCIDRs: ADDRESS,
      groups: [{ name: 'apps', versions: [{ version: 'v1' }], serverAddressByClientCIDRs: ADDRESS }],
    };
    const out = withoutServerAddresses(Buffer.from(JSON.stringify(doc)));
    expect(JSON.parse(out!.toString())).toEqual({
      kind: 'APIGroupList',
      groups: [{ name: 'apps', versions: [{ version: 'v1' }] }],
    });
    expect(out!.toString()).not.toContain('10.0.0.1');
    const plain = Buffer.from('{"kind":"APIVersions"}');
    expect(withoutServerAddresses(plain)).toBe(plain);
    expect(
      withoutServerAddresses(Buffer.from('not json serverAddressByClientCIDRs 10.0.0.1')),
    ).toBeUndefined();
  });

  function collect() {
    const events: unknown[] = [];
    const inner: Dispatcher.DispatchHandler = {
      onResponseStart: (_c, status, headers) => events.push(['start', status, headers['content-length']]),
      onResponseData: (_c, chunk) => events.push(['data', chunk.toString()]),
      onResponseEnd: () => events.push(['end']),
      onResponseError: (_c, err) => events.push(['error', err.message]),
    };
    return { events, inner };
  }
  const controller = () => {
    const c = { aborted: undefined as Error | undefined, abort: (e: Error) => (c.aborted = e) };
    return c as unknown as Dispatcher.DispatchController & { aborted?: Error };
  };

  test('the handler passes on one rewritten answer with its new length', () => {
    const { events, inner } = collect();
    const h = rewriteDiscovery('GET', '/api', inner);
    const c = controller();
    const body = JSON.stringify({
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: ADDRESS,
    });
    h.onResponseStart!(c, 200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    h.onResponseData!(c, Buffer.from(body.slice(0, 20)));
    h.onResponseData!(c, Buffer.from(body.slice(20)));
    expect(events).toEqual([]);
    h.onResponseEnd!(c, {});
    const rewritten = '{"kind":"APIVersions","versions":["v1"]}';
    expect(events).toEqual([['start', 200, String(rewritten.length)], ['data', rewritten], ['end']]);
    expect(rewriteDiscovery('GET', '/api/v1', inner)).toBe(inner);
  });

  test('a compressed or oversized answer is an error, never passed on unread', () => {
    const gz = collect();
    const h = rewriteDiscovery('GET', '/api', gz.inner);
    h.onResponseStart!(controller(), 200, { 'content-encoding': 'gzip' });
    h.onResponseData!(controller(), Buffer.from('\x1f\x8b'));
    h.onResponseEnd!(controller(), {});
    expect(gz.events).toEqual([['error', 'a discovery answer the gateway cannot rewrite']]);

    const big = collect();
    const c = controller();
    const hb = rewriteDiscovery('GET', '/apis', big.inner);
    hb.onResponseStart!(c, 200, {});
    hb.onResponseData!(c, Buffer.alloc(DISCOVERY_MAX_BYTES + 1));
    expect(c.aborted?.message).toMatch(/too large/);
    hb.onResponseEnd!(c, {});
    expect(big.events).toEqual([]);
  });
});
