// Which requests go through the runner's proxy: the variables, NO_PROXY's forms, loopback, and
// proxy URLs whose credentials must never reach a message. (Traffic through a real proxy:
// proxy-e2e.cluster.test.ts.)
import { describe, expect, test } from '@jest/globals';
import { bypasses, proxyFor, ProxyConfigError } from '../../src/action/proxy.js';

const u = (s: string) => new URL(s);

describe('proxyFor', () => {
  test('no proxy variable: direct', () => {
    expect(proxyFor(u('https://broker.example.com'), {})).toBeUndefined();
  });

  test('https_proxy (lower case first) or HTTPS_PROXY, with or without a scheme', () => {
    expect(proxyFor(u('https://b.example.com'), { HTTPS_PROXY: 'http://proxy.corp:3128' })).toMatchObject({
      hostname: 'proxy.corp',
      port: 3128,
      authorization: undefined,
      display: 'http://proxy.corp:3128 (from HTTPS_PROXY)',
    });
    expect(
      proxyFor(u('https://b.example.com'), { https_proxy: 'lower:8080', HTTPS_PROXY: 'http://upper:1' }),
    ).toMatchObject({ hostname: 'lower', port: 8080, display: 'http://lower:8080 (from https_proxy)' });
    expect(proxyFor(u('https://b.example.com'), { HTTPS_PROXY: 'http://proxy.corp' })?.port).toBe(80);
  });

  test('credentials become Proxy-Authorization and never appear in the display text', () => {
    const p = proxyFor(u('https://b.example.com'), { HTTPS_PROXY: 'http://ci%40corp:s3cr%3At@proxy:3128' })!;
    expect(p.authorization).toBe(`Basic ${Buffer.from('ci@corp:s3cr:t').toString('base64')}`);
    expect(p.display).toBe('http://proxy:3128 (from HTTPS_PROXY)');
    expect(p.display).not.toContain('s3cr');
  });

  test('an https:// or unparsable proxy URL is refused without echoing it', () => {
    expect(() => proxyFor(u('https://b.example.com'), { HTTPS_PROXY: 'https://u:pw@proxy:443' })).toThrow(
      new ProxyConfigError(
        'proxy https://proxy (from HTTPS_PROXY) uses https://; only http:// proxies are supported (the tunnel inside is TLS to the target)',
      ),
    );
    let message = '';
    try {
      proxyFor(u('https://b.example.com'), { HTTPS_PROXY: 'http://u:pw@[bad' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe('HTTPS_PROXY is not a URL; use http://host:port');
  });

  test('loopback targets never go through the proxy', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128' };
    for (const t of [
      'https://localhost:8443',
      'https://127.0.0.1',
      'https://127.8.9.10',
      'https://[::1]:8443',
    ])
      expect(proxyFor(u(t), env)).toBeUndefined();
    expect(proxyFor(u('https://128.0.0.1'), env)).toBeDefined();
  });

  test('no_proxy (lower case first) or NO_PROXY exempts a target', () => {
    expect(proxyFor(u('https://b.corp'), { HTTPS_PROXY: 'p:1', NO_PROXY: 'b.corp' })).toBeUndefined();
    expect(
      proxyFor(u('https://b.corp'), { HTTPS_PROXY: 'p:1', no_proxy: 'x', NO_PROXY: 'b.corp' }),
    ).toBeDefined();
  });
});

describe('NO_PROXY entries', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'https://anything.example.com', true],
    ['example.com', 'https://example.com', true],
    ['example.com', 'https://k8s.example.com', true],
    ['example.com', 'https://notexample.com', false],
    ['.example.com', 'https://k8s.example.com', true],
    ['.example.com', 'https://example.com', false],
    ['*.example.com', 'https://a.b.example.com', true],
    ['EXAMPLE.com', 'https://K8S.Example.COM', true],
    ['example.com', 'https://example.com./x', true],
    [' other.org , example.com ', 'https://example.com', true],
    ['example.com:8443', 'https://example.com:8443', true],
    ['example.com:8443', 'https://example.com', false],
    ['example.com:443', 'https://example.com', true],
    ['10.0.0.0/8', 'https://10.20.30.40', true],
    ['10.0.0.0/8', 'https://11.0.0.1', false],
    ['10.0.0.0/8', 'https://ten.example.com', false],
    ['10.0.0.0/8:443', 'https://10.1.1.1', true],
    ['10.0.0.0/8:443', 'https://10.1.1.1:8443', false],
    ['192.0.2.7', 'https://192.0.2.7:9443', true],
    ['192.0.2.7', 'https://192.0.2.8', false],
    ['fd00::/8', 'https://[fd00::2]', true],
    ['[fd00::2]:443', 'https://[fd00::2]', true],
    ['fd00::2', 'https://[fd00:0::2]', true],
    ['fd00::/8', 'https://10.0.0.1', false],
    ['10.0.0.0/99', 'https://10.0.0.1', false],
    ['', 'https://example.com', false],
  ];
  test.each(cases)('%j for %s: %s', (entry, target, expected) => {
    expect(bypasses(u(target), entry)).toBe(expected);
  });
});
