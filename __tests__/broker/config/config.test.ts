// The broker config file: defaults, path resolution, the example file, and refusals that name the
// file, the line, the key and the fix.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  loadConfig,
  parseConfig,
  type BrokerConfig,
} from '../../../src/broker/config/load-config.js';
import { GATEWAY_LIMIT_DEFAULTS } from '../../../src/broker/config/broker-config.js';

const EXAMPLES = fileURLToPath(new URL('../../../deploy/examples/', import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'broker-config-test-'));
  mkdirSync(join(dir, 'tls'));
  for (const f of ['tls/tls.crt', 'tls/tls.key', 'policy.yaml', 'kubeconfig.yaml', 'ca.crt'])
    writeFileSync(join(dir, f), 'x');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function parse(text: string): BrokerConfig {
  return parseConfig(text, join(dir, 'config.yaml'));
}

function issues(text: string): { line: number | undefined; field: string; message: string }[] {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(({ line, field, message }) => ({ line, field, message }));
  }
  throw new Error('config was accepted');
}

const MINIMAL = 'policyFile: policy.yaml\ninsecureHttp: true\n';

describe('valid configuration', () => {
  test('a minimal file gets the documented defaults, with paths resolved against its directory', () => {
    expect(parse(MINIMAL)).toEqual({
      configFile: join(dir, 'config.yaml'),
      listen: { host: '0.0.0.0', port: 8443 },
      internalListen: { host: '127.0.0.1', port: 9090 },
      insecureHttp: true,
      tls: undefined,
      issuers: [{ issuer: 'https://token.actions.githubusercontent.com' }],
      audience: 'k8s-ephemeral-access',
      leewaySeconds: 30,
      policyFile: join(dir, 'policy.yaml'),
      kubeconfig: undefined,
      brokerNamespace: 'k8s-ephemeral-access',
      reaper: { intervalSeconds: 15, leaseName: 'k8s-ephemeral-access-reaper' },
      limits: {
        bodyBytes: 16384,
        requestTimeoutMs: 10000,
        perRepositoryPerMinute: 30,
        revocationsPerMinute: 600,
      },
      shutdownGraceMs: 10000,
      clusterServer: undefined,
      clusterCaFile: undefined,
      trustedProxies: [],
      explainRefusals: false,
      publicListeners: true,
    });
  });

  test('every key can be set', () => {
    const config = parse(`listen: { host: 127.0.0.1, port: 0 }
internalListen: { host: 0.0.0.0, port: 9191 }
tls: { certFile: tls/tls.crt, keyFile: ${join(dir, 'tls/tls.key')} }
issuers:
  - https://token.actions.githubusercontent.com/octo-enterprise
  - https://ghes.example.com/_services/token
  - http://127.0.0.1:4000
audience: broker.example.com
leewaySeconds: 60
policyFile: policy.yaml
kubeconfig: kubeconfig.yaml
brokerNamespace: ci-broker
reaper: { intervalSeconds: 5, leaseName: reaper.ci }
limits: { bodyBytes: 2048, requestTimeoutMs: 5000, perRepositoryPerMinute: 100, revocationsPerMinute: 50 }
shutdownGraceMs: 0
clusterServer: https://k8s.example.com:6443
clusterCaFile: ca.crt
explainRefusals: true
`);
    expect(config).toMatchObject({
      listen: { host: '127.0.0.1', port: 0 },
      internalListen: { host: '0.0.0.0', port: 9191 },
      insecureHttp: false,
      tls: { certFile: join(dir, 'tls/tls.crt'), keyFile: join(dir, 'tls/tls.key') },
      issuers: [
        { issuer: 'https://token.actions.githubusercontent.com/octo-enterprise' },
        { issuer: 'https://ghes.example.com/_services/token' },
        { issuer: 'http://127.0.0.1:4000' },
      ],
      audience: 'broker.example.com',
      leewaySeconds: 60,
      kubeconfig: join(dir, 'kubeconfig.yaml'),
      brokerNamespace: 'ci-broker',
      reaper: { intervalSeconds: 5, leaseName: 'reaper.ci' },
      limits: {
        bodyBytes: 2048,
        requestTimeoutMs: 5000,
        perRepositoryPerMinute: 100,
        revocationsPerMinute: 50,
      },
      shutdownGraceMs: 0,
      clusterServer: 'https://k8s.example.com:6443',
      clusterCaFile: join(dir, 'ca.crt'),
      explainRefusals: true,
    });
  });

  test('the result is deeply frozen', () => {
    const config = parse(MINIMAL);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
    expect(Object.isFrozen(config.issuers[0])).toBe(true);
  });

  test('the example in deploy/examples loads, next to its policy and TLS files', () => {
    const exampleDir = mkdtempSync(join(tmpdir(), 'broker-example-'));
    try {
      // The example points at the TLS Secret's mount path in the pod; here it is a local directory.
      const example = readFileSync(join(EXAMPLES, 'broker-config.yaml'), 'utf8');
      expect(example).toContain('/etc/k8s-ea-tls/tls.crt');
      writeFileSync(
        join(exampleDir, 'config.yaml'),
        example.replaceAll('/etc/k8s-ea-tls/', `${exampleDir}/tls/`),
      );
      copyFileSync(join(EXAMPLES, 'policy.yaml'), join(exampleDir, 'policy.yaml'));
      mkdirSync(join(exampleDir, 'tls'));
      writeFileSync(join(exampleDir, 'tls/tls.crt'), 'x');
      writeFileSync(join(exampleDir, 'tls/tls.key'), 'x');
      const config = loadConfig(join(exampleDir, 'config.yaml'));
      expect(config.policyFile).toBe(join(exampleDir, 'policy.yaml'));
      expect(config.tls).toEqual({
        certFile: join(exampleDir, 'tls/tls.crt'),
        keyFile: join(exampleDir, 'tls/tls.key'),
      });
      expect(config.issuers).toEqual([{ issuer: 'https://token.actions.githubusercontent.com' }]);
    } finally {
      rmSync(exampleDir, { recursive: true, force: true });
    }
  });
});

describe('refused configuration names file, line, key and fix', () => {
  test('the message has the form file:line: key: problem', () => {
    expect(() => parse('policyFile: policy.yaml\ninsecureHttp: true\nleewaySeconds: 120\n')).toThrow(
      `${join(dir, 'config.yaml')}:3: leewaySeconds: must be between 0 and 60, got 120`,
    );
  });

  test('no TLS and no explicit insecureHttp is refused', () => {
    expect(issues('policyFile: policy.yaml\n')).toEqual([
      expect.objectContaining({ line: 1, field: '', message: expect.stringContaining('needs tls:') }),
    ]);
    expect(issues('policyFile: policy.yaml\ninsecureHttp: false\n')).toHaveLength(1);
  });

  test('TLS together with insecureHttp is refused', () => {
    expect(
      issues(
        'policyFile: policy.yaml\ninsecureHttp: true\ntls: { certFile: tls/tls.crt, keyFile: tls/tls.key }\n',
      ),
    ).toEqual([expect.objectContaining({ line: 2, field: 'insecureHttp' })]);
  });

  test.each([
    [
      'a missing policy file',
      'policyFile: nope.yaml\ninsecureHttp: true\n',
      1,
      'policyFile',
      'is not a readable file',
    ],
    [
      'a directory as policy file',
      'policyFile: tls\ninsecureHttp: true\n',
      1,
      'policyFile',
      'is not a readable file',
    ],
    [
      'a missing TLS key',
      'policyFile: policy.yaml\ntls:\n  certFile: tls/tls.crt\n  keyFile: tls/missing.key\n',
      4,
      'tls.keyFile',
      'is not a readable file',
    ],
    [
      'an incomplete tls block',
      'policyFile: policy.yaml\ntls:\n  certFile: tls/tls.crt\n',
      2,
      'tls',
      'missing required field "keyFile"',
    ],
    ['a misspelt key', `${MINIMAL}leeway: 10\n`, 3, 'leeway', 'did you mean "leewaySeconds"?'],
    [
      'a misspelt nested key',
      `${MINIMAL}limits:\n  bodybytes: 10\n`,
      4,
      'limits.bodybytes',
      'did you mean "bodyBytes"?',
    ],
    ['a port out of range', `${MINIMAL}listen:\n  port: 70000\n`, 4, 'listen.port', 'between 0 and 65535'],
    ['a quoted port', `${MINIMAL}listen:\n  port: "8443"\n`, 4, 'listen.port', 'must be a whole number'],
    [
      'metrics on the public port',
      `${MINIMAL}internalListen:\n  port: 8443\n`,
      4,
      'internalListen.port',
      'must differ from listen.port',
    ],
    ['a negative leeway', `${MINIMAL}leewaySeconds: -1\n`, 3, 'leewaySeconds', 'between 0 and 60'],
    [
      'an http issuer',
      `${MINIMAL}issuers: [http://token.example.com]\n`,
      3,
      'issuers[0]',
      'must use https://',
    ],
    [
      'an issuer with a trailing slash',
      `${MINIMAL}issuers:\n  - https://token.actions.githubusercontent.com/\n`,
      4,
      'issuers[0]',
      'must not end with "/"',
    ],
    ['no issuers', `${MINIMAL}issuers: []\n`, 3, 'issuers', 'must list at least one entry'],
    [
      'a single issuer not in a list',
      `${MINIMAL}issuers: https://token.actions.githubusercontent.com\n`,
      3,
      'issuers',
      'must be a list',
    ],
    [
      "GitHub's default audience",
      `${MINIMAL}audience: https://github.com/octo-org\n`,
      3,
      'audience',
      "another service's audience",
    ],
    [
      "AWS's audience",
      `${MINIMAL}audience: sts.amazonaws.com\n`,
      3,
      'audience',
      "another service's audience",
    ],
    [
      'an invalid broker namespace',
      `${MINIMAL}brokerNamespace: CI_Broker\n`,
      3,
      'brokerNamespace',
      'is not a namespace name',
    ],
    [
      'a zero reaper interval',
      `${MINIMAL}reaper:\n  intervalSeconds: 0\n`,
      4,
      'reaper.intervalSeconds',
      'between 1 and 3600',
    ],
    [
      'a huge body limit',
      `${MINIMAL}limits:\n  bodyBytes: 100000000\n`,
      4,
      'limits.bodyBytes',
      'between 1024 and 1048576',
    ],
    [
      'an http clusterServer',
      `${MINIMAL}clusterServer: http://k8s.example.com\n`,
      3,
      'clusterServer',
      'must be an https:// URL',
    ],
    [
      'a missing clusterCaFile',
      `${MINIMAL}clusterCaFile: missing-ca.crt\n`,
      3,
      'clusterCaFile',
      'is not a readable file',
    ],
    [
      'a string for insecureHttp',
      'policyFile: policy.yaml\ninsecureHttp: "yes"\n',
      2,
      'insecureHttp',
      'must be true or false',
    ],
  ])('%s', (_name, text, line, field, message) => {
    expect(issues(text)).toEqual(
      expect.arrayContaining([{ line, field, message: expect.stringContaining(message) }]),
    );
  });

  test('a missing TLS file says which Secret the deployment mounts there and how to create it', () => {
    const [issue] = issues(
      'policyFile: policy.yaml\ntls:\n  certFile: tls/absent.crt\n  keyFile: tls/tls.key\n',
    );
    expect(issue).toMatchObject({ line: 3, field: 'tls.certFile' });
    expect(issue!.message).toContain('is not a readable file');
    expect(issue!.message).toContain('Secret k8s-ea-broker-tls');
    expect(issue!.message).toContain('/etc/k8s-ea-tls');
    expect(issue!.message).toContain('kubectl create secret tls k8s-ea-broker-tls');
    // Only the TLS files carry the hint: another missing file is not about a Secret.
    expect(issues('policyFile: nope.yaml\ninsecureHttp: true\n')[0]!.message).not.toContain('Secret');
  });

  test('a missing policyFile key is refused', () => {
    expect(issues('insecureHttp: true\n')).toEqual([
      expect.objectContaining({ field: '', message: 'missing required field "policyFile"' }),
    ]);
  });

  test('YAML that is not a mapping, or not YAML at all, is refused', () => {
    expect(issues('- policyFile: policy.yaml\n')[0]?.message).toContain('must be a mapping');
    expect(issues('policyFile: [unclosed\n')[0]?.message).toContain('not valid YAML');
  });

  test('a missing config file is reported with its path', () => {
    expect(() => loadConfig(join(dir, 'absent.yaml'))).toThrow(
      /absent\.yaml: cannot read the config file \(ENOENT\)/,
    );
  });
});

describe('trustedProxies', () => {
  test('IPv4 and IPv6 ranges are kept in canonical form', () => {
    const config = parse(`${MINIMAL}trustedProxies: [10.0.0.0/8, '2001:DB8::/32', 192.0.2.1/32]\n`);
    expect(config.trustedProxies).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.1/32']);
    expect(parse(`${MINIMAL}trustedProxies: []\n`).trustedProxies).toEqual([]);
  });

  test.each([
    ['10.1.0.0/8', 'trustedProxies[0]', 'has address bits set beyond its /8 prefix; write 10.0.0.0/8'],
    ['10.0.0.1', 'trustedProxies[0]', 'write 10.0.0.1/32 for this one address'],
    ['::1/129', 'trustedProxies[0]', 'from 0 to 128'],
    ['localhost/32', 'trustedProxies[0]', 'is not an IPv4 or IPv6 address'],
    ['10.0.0.0/8, 10.0.0.0/8', 'trustedProxies[1]', 'is listed twice'],
  ])('%j is refused at %s', (ranges, field, message) => {
    expect(issues(`${MINIMAL}trustedProxies: [${ranges}]\n`)).toEqual([
      { line: 3, field, message: expect.stringContaining(message) },
    ]);
  });

  test('a single range must still be a list', () => {
    expect(issues(`${MINIMAL}trustedProxies: 10.0.0.0/8\n`)).toEqual([
      { line: 3, field: 'trustedProxies', message: expect.stringContaining('must be a list') },
    ]);
  });
});

describe('gateway section', () => {
  const TLS = 'policyFile: policy.yaml\ntls: { certFile: tls/tls.crt, keyFile: tls/tls.key }\n';

  test('absent: direct mode', () => {
    expect(parse(TLS).gateway).toBeUndefined();
  });

  test('with only url: listens on 0.0.0.0:8444 with the broker certificate, and hands jobs no CA', () => {
    expect(parse(`${TLS}gateway:\n  url: https://k8s-gw.example.com\n`).gateway).toEqual({
      listen: { host: '0.0.0.0', port: 8444 },
      url: 'https://k8s-gw.example.com',
      tls: { certFile: join(dir, 'tls/tls.crt'), keyFile: join(dir, 'tls/tls.key') },
      limits: GATEWAY_LIMIT_DEFAULTS,
    });
  });

  test('every key can be set', () => {
    const text =
      `${TLS}gateway:\n  url: https://k8s-gw.example.com:9443\n  listen: { host: 127.0.0.1, port: 9443 }\n` +
      '  tls: { certFile: ca.crt, keyFile: tls/tls.key }\n  caFile: ca.crt\n' +
      '  limits:\n    requestsPerGrant: 8\n    longRunningPerGrant: 2\n    requestsPerRepository: 16\n' +
      '    longRunningPerRepository: 4\n    upstreamConnections: 32\n    longRunningConnections: 64\n' +
      '    upstreamWaitMs: 500\n';
    expect(parse(text).gateway).toEqual({
      listen: { host: '127.0.0.1', port: 9443 },
      url: 'https://k8s-gw.example.com:9443',
      tls: { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'tls/tls.key') },
      caFile: join(dir, 'ca.crt'),
      limits: {
        requestsPerGrant: 8,
        longRunningPerGrant: 2,
        requestsPerRepository: 16,
        longRunningPerRepository: 4,
        upstreamConnections: 32,
        longRunningConnections: 64,
        upstreamWaitMs: 500,
      },
    });
  });

  test.each([
    ['no url', `${TLS}gateway:\n  caFile: ca.crt\n`, 'gateway', 'missing required field "url"'],
    [
      'a plain-http url',
      `${TLS}gateway:\n  url: http://gw.example.com\n`,
      'gateway.url',
      'must be the https:// URL',
    ],
    [
      'the public port',
      `${TLS}gateway:\n  url: https://gw.example.com\n  listen: { port: 8443 }\n`,
      'gateway.listen.port',
      'must differ from listen.port and internalListen.port',
    ],
    [
      'a missing CA file',
      `${TLS}gateway:\n  url: https://gw.example.com\n  caFile: nope.crt\n`,
      'gateway.caFile',
      'is not a readable file',
    ],
    [
      'a misspelt key',
      `${TLS}gateway:\n  url: https://gw.example.com\n  caFle: ca.crt\n`,
      'gateway.caFle',
      'did you mean "caFile"?',
    ],
    [
      'a cap of zero',
      `${TLS}gateway:\n  url: https://gw.example.com\n  limits: { longRunningPerGrant: 0 }\n`,
      'gateway.limits.longRunningPerGrant',
      '',
    ],
    [
      "a grant's cap over its repository's",
      `${TLS}gateway:\n  url: https://gw.example.com\n  limits: { requestsPerGrant: 300 }\n`,
      'gateway.limits.requestsPerGrant',
      'must not exceed requestsPerRepository',
    ],
  ])('%s is refused', (_name, text, field, message) => {
    expect(issues(text)).toEqual([
      expect.objectContaining({ field, message: expect.stringContaining(message) }),
    ]);
  });
});

describe('auditLog section', () => {
  test('absent: none (direct-mode summaries say unavailable)', () => {
    expect(parse(MINIMAL).auditLog).toBeUndefined();
  });

  test('the file, resolved against the config directory; 64 MiB read at most unless set', () => {
    writeFileSync(join(dir, 'audit.log'), '');
    expect(parse(`${MINIMAL}auditLog: { file: audit.log }\n`).auditLog).toEqual({
      file: join(dir, 'audit.log'),
      maxReadBytes: 64 * 1024 * 1024,
    });
    expect(parse(`${MINIMAL}auditLog: { file: audit.log, maxReadMiB: 512 }\n`).auditLog).toEqual({
      file: join(dir, 'audit.log'),
      maxReadBytes: 512 * 1024 * 1024,
    });
  });

  test.each([
    ['no file', `${MINIMAL}auditLog: { maxReadMiB: 8 }\n`, 'auditLog', 'missing required field "file"'],
    ['a missing file', `${MINIMAL}auditLog: { file: nope.log }\n`, 'auditLog.file', 'is not a readable file'],
    ['a zero bound', `${MINIMAL}auditLog: { file: audit.log, maxReadMiB: 0 }\n`, 'auditLog.maxReadMiB', ''],
    [
      'gateway mode',
      'policyFile: policy.yaml\ntls: { certFile: tls/tls.crt, keyFile: tls/tls.key }\n' +
        'gateway: { url: https://gw.example.com }\nauditLog: { file: audit.log }\n',
      'auditLog',
      'is for direct mode only',
    ],
  ])('%s is refused', (_name, text, field, message) => {
    writeFileSync(join(dir, 'audit.log'), '');
    expect(issues(text)).toEqual([
      expect.objectContaining({ field, message: expect.stringContaining(message) }),
    ]);
  });
});
