// The two config readers of edge mode: the edge's own file, and the broker config's `edge:` section.
// Every problem is reported with its field; a placeholder pin keeps the edge from starting.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { ConfigError, parseConfig } from '../../src/broker/config/load-config.js';
import { EDGE_BACKOFF_DEFAULTS } from '../../src/broker/config/edge-section.js';
import { parseEdgeConfig } from '../../src/broker/edge-relay/edge-config.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edge-config-'));
  for (const f of ['t.crt', 't.key', 'ca.crt', 'policy.yaml']) writeFileSync(join(dir, f), 'x');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PIN = 'cFIJo3AdXzg7X3fWgrLWLLZiiv2HiGNxFyp5HkhMaMo=';
const EDGE = {
  routes: [
    { serverName: 'broker.example.com', target: 'broker' },
    { serverName: 'gw.example.com', target: 'gateway' },
  ],
  tunnel: { tls: { certFile: 't.crt', keyFile: 't.key' }, clientCaFile: 'ca.crt', clientKeySha256: [PIN] },
};
const edgeProblems = (doc: unknown): string[] => {
  try {
    parseEdgeConfig(dump(doc), join(dir, 'edge.yaml'));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message.split('\n');
  }
};

describe("the edge's config", () => {
  test('a minimal file gets the defaults, paths resolved against its directory', () => {
    const c = parseEdgeConfig(dump(EDGE), join(dir, 'edge.yaml'));
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(c.tunnel.listen).toEqual({ host: '0.0.0.0', port: 8500 });
    expect(c.helloTimeoutMs).toBe(10_000);
    expect([...c.routes]).toEqual([
      ['broker.example.com', 'broker'],
      ['gw.example.com', 'gateway'],
    ]);
    expect(c.tunnel.tls.certFile).toBe(join(dir, 't.crt'));
    expect(c.tunnel.clientKeySha256).toEqual([PIN]);
  });

  test.each([
    [
      'an unknown target',
      { ...EDGE, routes: [{ serverName: 'a.example', target: 'apiserver' }] },
      'routes[0].target',
    ],
    [
      'an upper-case or wild server name',
      { ...EDGE, routes: [{ serverName: '*.Example.com', target: 'broker' }] },
      'serverName',
    ],
    ['a name routed twice', { ...EDGE, routes: [EDGE.routes[0], EDGE.routes[0]] }, 'routed twice'],
    ['no route', { ...EDGE, routes: [] }, 'at least one'],
    [
      'a placeholder pin',
      { ...EDGE, tunnel: { ...EDGE.tunnel, clientKeySha256: ['REPLACE_ME'] } },
      'SHA-256',
    ],
    ['no pin', { ...EDGE, tunnel: { ...EDGE.tunnel, clientKeySha256: [] } }, 'clientKeySha256'],
    [
      'a missing file',
      { ...EDGE, tunnel: { ...EDGE.tunnel, clientCaFile: 'nope.crt' } },
      'not a readable file',
    ],
    [
      'the same port twice',
      { ...EDGE, listen: { port: 9000 }, tunnel: { ...EDGE.tunnel, listen: { port: 9000 } } },
      'must differ',
    ],
    ['an unknown key', { ...EDGE, upstream: 'x' }, 'unknown field'],
  ])('refuses %s', (_what, doc, expected) => {
    expect(edgeProblems(doc).join('\n')).toContain(expected);
  });

  test('pins from a file of their own (a mounted Secret): one per line, comments and blanks skipped', () => {
    const withPinFile = (name: string) => ({
      ...EDGE,
      tunnel: { tls: EDGE.tunnel.tls, clientCaFile: 'ca.crt', clientKeySha256File: name },
    });
    const other = 'AAAAo3AdXzg7X3fWgrLWLLZiiv2HiGNxFyp5HkhMaMo=';
    writeFileSync(join(dir, 'pins'), `# the brokers' client key\n${PIN}\n\n${other}\n`);
    const c = parseEdgeConfig(dump(withPinFile('pins')), join(dir, 'edge.yaml'));
    expect(c.tunnel.clientKeySha256).toEqual([PIN, other]);
    writeFileSync(join(dir, 'bad-pins'), `${PIN}\nREPLACE_ME\n${PIN}\n`);
    const problems = edgeProblems(withPinFile('bad-pins')).join('\n');
    expect(problems).toMatch(/clientKeySha256File: line 2 of .*bad-pins is not a base64 SHA-256/);
    expect(problems).toMatch(/line 3 of .*bad-pins repeats a pin/);
    writeFileSync(join(dir, 'no-pins'), '# none yet\n');
    expect(edgeProblems(withPinFile('no-pins')).join('\n')).toContain('lists no pin');
    const both = { ...EDGE, tunnel: { ...EDGE.tunnel, clientKeySha256File: 'pins' } };
    expect(edgeProblems(both).join('\n')).toContain('exactly one of clientKeySha256');
  });

  test("the example in deploy/edge/: accepted with its Secrets' files, refused with a placeholder pin", () => {
    const text = readFileSync(new URL('../../deploy/edge/edge-config.yaml', import.meta.url), 'utf8');
    const mounted = text.replace(/\/etc\/k8s-ea-edge[a-z-]*\/(tls\.crt|tls\.key|ca\.crt|pins)/g, (_m, f) =>
      join(dir, f === 'pins' ? 'example-pins' : f === 'tls.crt' ? 't.crt' : f === 'tls.key' ? 't.key' : f),
    );
    writeFileSync(join(dir, 'example-pins'), `${PIN}\n`);
    expect(parseEdgeConfig(mounted, join(dir, 'edge.yaml')).tunnel.clientKeySha256).toEqual([PIN]);
    writeFileSync(join(dir, 'example-pins'), 'REPLACE_ME\n');
    expect(() => parseEdgeConfig(mounted, join(dir, 'edge.yaml'))).toThrow(/line 1 of .* SHA-256/);
  });
});

describe("the broker config's edge section", () => {
  const broker = (edge: unknown) =>
    dump({ policyFile: 'policy.yaml', tls: { certFile: 't.crt', keyFile: 't.key' }, edge });
  const EDGE_SECTION = {
    addresses: ['edge.example.com:8500', '[2001:db8::1]:8500'],
    caFile: 'ca.crt',
    clientTls: { certFile: 't.crt', keyFile: 't.key' },
  };

  test('reads addresses (IPv6 too), the pinned CA, the client certificate, default backoff', () => {
    const c = parseConfig(broker(EDGE_SECTION), join(dir, 'broker.yaml'));
    expect(c.edge).toEqual({
      addresses: [
        { host: 'edge.example.com', port: 8500 },
        { host: '2001:db8::1', port: 8500 },
      ],
      caFile: join(dir, 'ca.crt'),
      clientTls: { certFile: join(dir, 't.crt'), keyFile: join(dir, 't.key') },
      backoff: EDGE_BACKOFF_DEFAULTS,
    });
  });

  test.each([
    ['an address without a port', { ...EDGE_SECTION, addresses: ['edge.example.com'] }, 'host:port'],
    ['port 0', { ...EDGE_SECTION, addresses: ['edge.example.com:0'] }, 'host:port'],
    ['no address', { ...EDGE_SECTION, addresses: [] }, 'at least one'],
    [
      'a backoff that starts above its ceiling',
      { ...EDGE_SECTION, backoff: { initialMs: 5000, maxMs: 1000 } },
      'must not exceed maxMs',
    ],
    [
      'a backoff ceiling out of range',
      { ...EDGE_SECTION, backoff: { maxMs: 999_999 } },
      'between 100 and 300000',
    ],
    ['no client certificate', { addresses: EDGE_SECTION.addresses, caFile: 'ca.crt' }, 'clientTls'],
  ])('refuses %s', (_what, edge, expected) => {
    expect(() => parseConfig(broker(edge), join(dir, 'broker.yaml'))).toThrow(expected);
  });

  test('refuses edge mode on a broker that serves plain HTTP', () => {
    const text = dump({ policyFile: 'policy.yaml', insecureHttp: true, edge: EDGE_SECTION });
    expect(() => parseConfig(text, join(dir, 'broker.yaml'))).toThrow(/needs the broker to serve TLS/);
  });

  describe('publicListeners: false (edge-only)', () => {
    const TLS = { certFile: 't.crt', keyFile: 't.key' };
    const read = (doc: Record<string, unknown>) =>
      parseConfig(dump({ policyFile: 'policy.yaml', tls: TLS, ...doc }), join(dir, 'broker.yaml'));

    test('with an edge: no public listener; the default keeps them', () => {
      expect(read({ edge: EDGE_SECTION, publicListeners: false }).publicListeners).toBe(false);
      expect(read({ edge: EDGE_SECTION }).publicListeners).toBe(true);
      expect(read({}).publicListeners).toBe(true);
    });

    test.each([
      ['without an edge', {}, 'publicListeners: can be false only in edge mode'],
      ['with a listen address', { edge: EDGE_SECTION, listen: { port: 8443 } }, 'listen: is not used'],
      [
        'with a gateway listen address',
        { edge: EDGE_SECTION, gateway: { url: 'https://gw.example.com', listen: { port: 8444 } } },
        'gateway.listen: is not used',
      ],
    ])('refuses it %s', (_what, doc, expected) => {
      expect(() => read({ ...doc, publicListeners: false })).toThrow(expected);
    });
  });
});
