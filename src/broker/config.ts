// The broker's configuration file: read once at start into a frozen, typed object. Every problem
// names the file, the line, the key and the fix (docs/configuration.md documents each key).
// Nothing else in the broker reads the environment or the config file.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULT_AUDIENCE } from '../shared/api.js';
import { DNS_LABEL, DNS_SUBDOMAIN } from '../shared/contract.js';
import { GITHUB_ISSUER, issuerUrlProblem, type IssuerConfig } from './auth/issuer-url.js';
import { DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS } from './auth/token-verifier.js';
import { DEFAULT_REVOCATIONS_PER_MINUTE } from './http/rate-limit.js';
import { ConfigError } from './config/config-error.js';
import { readCidrList } from './config/cidr-list.js';
import { FieldReader, type Mapping } from './config/fields.js';
import { parseYamlSource, type YamlPath } from './config/yaml-source.js';
import { DEFAULT_BROKER_NAMESPACE } from './policy/job-namespaces.js';
import type { BrokerLimits } from './runtime.js';
import type { GatewayConfig } from './gateway/start-gateway.js';
import { GATEWAY_LIMIT_DEFAULTS, type GatewayLimits } from './gateway/fairness.js';
import { readEdgeSection } from './edge/edge-config.js';
import type { EdgeTunnelConfig } from './edge/start-edge-tunnels.js';

export { ConfigError } from './config/config-error.js';

export interface BrokerConfig {
  /** Absolute path of the file this was read from. */
  configFile: string;
  listen: { host: string; port: number };
  /** Metrics, health and readiness, plain HTTP, never on the public listener. */
  internalListen: { host: string; port: number };
  /** Serve plain HTTP (behind a TLS-terminating proxy, or in tests). Never implied. */
  insecureHttp: boolean;
  /** Absent exactly when insecureHttp is true. */
  tls: { certFile: string; keyFile: string } | undefined;
  issuers: IssuerConfig[];
  audience: string;
  leewaySeconds: number;
  /** Absolute path. */
  policyFile: string;
  /** Absolute path; undefined means in-cluster configuration. */
  kubeconfig: string | undefined;
  /** Namespace of the broker itself (its reaper Lease lives there). */
  brokerNamespace: string;
  reaper: { intervalSeconds: number; leaseName: string };
  limits: Required<BrokerLimits>;
  shutdownGraceMs: number;
  /** API server URL handed to jobs, when it differs from the one the broker itself uses. */
  clusterServer: string | undefined;
  /** CA bundle (PEM) handed to jobs with clusterServer; absolute path. */
  clusterCaFile: string | undefined;
  /** Peers whose X-Forwarded-For names the client (canonical CIDRs); empty: none. */
  trustedProxies: readonly string[];
  /** Send callers the reason of a refusal, for the reasons in CALLER_REASONS only. */
  explainRefusals: boolean;
  /** Gateway mode when present (docs/configuration.md); `tls` defaults to the broker's. */
  gateway: GatewayConfig | undefined;
  /** Edge mode when present: the replica dials the edges and serves runners through them. */
  edge: EdgeTunnelConfig | undefined;
}

/**
 * In a cluster the TLS files are a mounted Secret, optional in deploy/ and the chart so that its absence
 * ends here, in the log, rather than in a pod stuck in ContainerCreating: say which Secret and how to make it.
 */
const TLS_FILES_FROM =
  '; deploy/ and the Helm chart (by default) mount them from the Secret k8s-ea-broker-tls (tls.crt, tls.key) at ' +
  '/etc/k8s-ea-tls: create it in the broker namespace with ' +
  '`kubectl create secret tls k8s-ea-broker-tls --cert=<file> --key=<file>` (docs/operations.md)';

export const CONFIG_DEFAULTS = deepFreeze({
  listen: { host: '0.0.0.0', port: 8443 },
  internalListen: { host: '127.0.0.1', port: 9090 },
  gatewayListen: { host: '0.0.0.0', port: 8444 },
  issuers: [GITHUB_ISSUER],
  audience: DEFAULT_AUDIENCE,
  leewaySeconds: DEFAULT_LEEWAY_SECONDS,
  brokerNamespace: DEFAULT_BROKER_NAMESPACE,
  reaper: { intervalSeconds: 15, leaseName: 'k8s-ephemeral-access-reaper' },
  limits: {
    bodyBytes: 16_384,
    requestTimeoutMs: 10_000,
    perRepositoryPerMinute: 30,
    revocationsPerMinute: DEFAULT_REVOCATIONS_PER_MINUTE,
  },
  shutdownGraceMs: 10_000,
});

const HOST = /^[A-Za-z0-9.:-]+$/;
/** Audiences of other relying parties: a broker sharing one would accept tokens minted for them. */
const FOREIGN_AUDIENCES = [
  /^https:\/\/github\.com\//i,
  /^sts\.amazonaws\.com$/i,
  /^api:\/\/AzureADTokenExchange$/i,
  /iam\.googleapis\.com/i,
];

/** Reads and validates the config file at `path`. Throws ConfigError. */
export function loadConfig(path: string): BrokerConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError([
      { file: path, line: undefined, field: '', message: `cannot read the config file (${code})` },
    ]);
  }
  return parseConfig(text, file);
}

/** Validates config YAML; relative paths resolve against the directory of `fileName`. */
export function parseConfig(text: string, fileName: string): BrokerConfig {
  const source = parseYamlSource(text, fileName);
  const r = new FieldReader(source);
  const baseDir = dirname(resolve(fileName));
  const doc = r.mapping([], source.value, {
    required: ['policyFile'],
    optional: [
      'listen',
      'internalListen',
      'tls',
      'insecureHttp',
      'issuers',
      'audience',
      'leewaySeconds',
      'kubeconfig',
      'brokerNamespace',
      'reaper',
      'limits',
      'shutdownGraceMs',
      'clusterServer',
      'clusterCaFile',
      'trustedProxies',
      'explainRefusals',
      'gateway',
      'edge',
    ],
  });
  if (!doc) {
    r.finish();
    throw new Error('unreachable');
  }

  /** A file path, resolved against the config's directory; the file must exist. */
  const filePath = (path: YamlPath, value: unknown, whereFrom = ''): string | undefined => {
    const raw = r.string(path, value);
    if (raw === undefined) return undefined;
    const absolute = resolve(baseDir, raw);
    let isFile: boolean;
    try {
      isFile = statSync(absolute).isFile();
    } catch {
      isFile = false;
    }
    if (isFile) return absolute;
    return r.report(
      path,
      `${JSON.stringify(raw)} is not a readable file (relative paths start from ${baseDir})${whereFrom}`,
    );
  };
  // Optional keys. On a bad value the default stands in only until finish() throws the problems.
  const int = (path: YamlPath, value: unknown, min: number, max: number, fallback: number): number =>
    value === undefined ? fallback : (r.integer(path, value, min, max) ?? fallback);
  const name = (path: YamlPath, value: unknown, pattern: RegExp, hint: string, fallback: string): string =>
    value === undefined ? fallback : (r.string(path, value, { pattern, hint, maxLength: 253 }) ?? fallback);
  const section = (key: string, keys: readonly string[]): Mapping =>
    doc[key] === undefined ? {} : (r.mapping([key], doc[key], { optional: keys }) ?? {});
  const defaults = CONFIG_DEFAULTS;

  const readListen = (key: 'listen' | 'internalListen') => {
    const d = section(key, ['host', 'port']);
    return {
      host: name([key, 'host'], d.host, HOST, 'is not an IP address or host name', defaults[key].host),
      port: int([key, 'port'], d.port, 0, 65535, defaults[key].port),
    };
  };
  const listen = readListen('listen');
  const internalListen = readListen('internalListen');
  if (internalListen.port !== 0 && internalListen.port === listen.port)
    r.report(['internalListen', 'port'], 'must differ from listen.port: metrics never share the public port');

  const insecureHttp = doc.insecureHttp === undefined ? false : r.boolean(['insecureHttp'], doc.insecureHttp);
  let tls: BrokerConfig['tls'];
  if (doc.tls !== undefined) {
    const tlsDoc = r.mapping(['tls'], doc.tls, { required: ['certFile', 'keyFile'] });
    const certFile = tlsDoc && filePath(['tls', 'certFile'], tlsDoc.certFile, TLS_FILES_FROM);
    const keyFile = tlsDoc && filePath(['tls', 'keyFile'], tlsDoc.keyFile, TLS_FILES_FROM);
    if (certFile && keyFile) tls = { certFile, keyFile };
    if (insecureHttp) r.report(['insecureHttp'], 'cannot be true together with tls; remove one of them');
  } else if (insecureHttp === false) {
    r.report(
      [],
      'needs tls: { certFile, keyFile } (or insecureHttp: true, only behind a TLS-terminating proxy or in tests)',
    );
  }

  const issuers =
    doc.issuers === undefined
      ? defaults.issuers
      : (r.list(
          ['issuers'],
          doc.issuers,
          (path, value) => {
            const issuer = r.string(path, value);
            const problem = issuer === undefined ? undefined : issuerUrlProblem(issuer);
            return problem ? r.report(path, `${JSON.stringify(issuer)} ${problem}`) : issuer;
          },
          { nonEmpty: true, unique: true },
        ) ?? []);

  const audience = name(
    ['audience'],
    doc.audience,
    /^\S{1,256}$/,
    'must be one word without spaces',
    defaults.audience,
  );
  if (FOREIGN_AUDIENCES.some((re) => re.test(audience)))
    r.report(
      ['audience'],
      `${JSON.stringify(audience)} is another service's audience; choose one unique to this broker, e.g. "${DEFAULT_AUDIENCE}"`,
    );

  const reaperDoc = section('reaper', ['intervalSeconds', 'leaseName']);
  const limitsDoc = section('limits', [
    'bodyBytes',
    'requestTimeoutMs',
    'perRepositoryPerMinute',
    'revocationsPerMinute',
  ]);
  const clusterServer =
    doc.clusterServer === undefined ? undefined : r.string(['clusterServer'], doc.clusterServer);
  if (clusterServer !== undefined && !isHttpsUrl(clusterServer))
    r.report(
      ['clusterServer'],
      `${JSON.stringify(clusterServer)} must be an https:// URL of the API server, e.g. https://k8s.example.com:6443`,
    );

  const gateway = doc.gateway === undefined ? undefined : readGateway();
  function readGateway(): GatewayConfig | undefined {
    const g = r.mapping(['gateway'], doc!.gateway, {
      required: ['url'],
      optional: ['listen', 'tls', 'caFile', 'limits'],
    });
    if (!g) return undefined;
    const limits = readGatewayLimits(g.limits);
    const d =
      g.listen === undefined
        ? {}
        : (r.mapping(['gateway', 'listen'], g.listen, { optional: ['host', 'port'] }) ?? {});
    const gatewayListen = {
      host: name(
        ['gateway', 'listen', 'host'],
        d.host,
        HOST,
        'is not an IP address or host name',
        defaults.gatewayListen.host,
      ),
      port: int(['gateway', 'listen', 'port'], d.port, 0, 65535, defaults.gatewayListen.port),
    };
    if (gatewayListen.port !== 0 && [listen.port, internalListen.port].includes(gatewayListen.port))
      r.report(['gateway', 'listen', 'port'], 'must differ from listen.port and internalListen.port');
    const url = r.string(['gateway', 'url'], g.url);
    if (url !== undefined && !isHttpsUrl(url))
      r.report(
        ['gateway', 'url'],
        `${JSON.stringify(url)} must be the https:// URL jobs reach the gateway at, e.g. https://k8s-gateway.example.com`,
      );
    let gatewayTls = tls;
    if (g.tls !== undefined) {
      const t = r.mapping(['gateway', 'tls'], g.tls, { required: ['certFile', 'keyFile'] });
      const certFile = t && filePath(['gateway', 'tls', 'certFile'], t.certFile);
      const keyFile = t && filePath(['gateway', 'tls', 'keyFile'], t.keyFile);
      gatewayTls = certFile && keyFile ? { certFile, keyFile } : undefined;
    }
    const caFile = g.caFile === undefined ? undefined : filePath(['gateway', 'caFile'], g.caFile);
    return {
      listen: gatewayListen,
      url: url ?? '',
      ...(gatewayTls ? { tls: gatewayTls } : {}),
      ...(caFile ? { caFile } : {}),
      limits,
    };
  }
  /** gateway.limits: each key optional, each a count (or ms) within sane bounds. */
  function readGatewayLimits(value: unknown): GatewayLimits {
    const keys = Object.keys(GATEWAY_LIMIT_DEFAULTS) as (keyof GatewayLimits)[];
    const l = value === undefined ? {} : (r.mapping(['gateway', 'limits'], value, { optional: keys }) ?? {});
    const limits = { ...GATEWAY_LIMIT_DEFAULTS };
    for (const key of keys) {
      const max = key === 'upstreamWaitMs' ? 60_000 : 100_000;
      limits[key] = int(['gateway', 'limits', key], l[key], 1, max, GATEWAY_LIMIT_DEFAULTS[key]);
    }
    if (limits.longRunningPerGrant > limits.longRunningPerRepository)
      r.report(['gateway', 'limits', 'longRunningPerGrant'], 'must not exceed longRunningPerRepository');
    if (limits.requestsPerGrant > limits.requestsPerRepository)
      r.report(['gateway', 'limits', 'requestsPerGrant'], 'must not exceed requestsPerRepository');
    return limits;
  }

  const config: BrokerConfig = {
    configFile: resolve(fileName),
    listen,
    internalListen,
    insecureHttp: insecureHttp ?? false,
    tls,
    issuers: issuers.map((issuer) => ({ issuer })),
    audience,
    leewaySeconds: int(['leewaySeconds'], doc.leewaySeconds, 0, MAX_LEEWAY_SECONDS, defaults.leewaySeconds),
    policyFile: filePath(['policyFile'], doc.policyFile) ?? '',
    kubeconfig: doc.kubeconfig === undefined ? undefined : filePath(['kubeconfig'], doc.kubeconfig),
    brokerNamespace: name(
      ['brokerNamespace'],
      doc.brokerNamespace,
      DNS_LABEL,
      'is not a namespace name (DNS-1123 label)',
      defaults.brokerNamespace,
    ),
    reaper: {
      intervalSeconds: int(
        ['reaper', 'intervalSeconds'],
        reaperDoc.intervalSeconds,
        1,
        3600,
        defaults.reaper.intervalSeconds,
      ),
      leaseName: name(
        ['reaper', 'leaseName'],
        reaperDoc.leaseName,
        DNS_SUBDOMAIN,
        'is not a valid Lease name (lowercase DNS-1123 subdomain)',
        defaults.reaper.leaseName,
      ),
    },
    limits: {
      bodyBytes: int(
        ['limits', 'bodyBytes'],
        limitsDoc.bodyBytes,
        1024,
        1_048_576,
        defaults.limits.bodyBytes,
      ),
      requestTimeoutMs: int(
        ['limits', 'requestTimeoutMs'],
        limitsDoc.requestTimeoutMs,
        1000,
        120_000,
        defaults.limits.requestTimeoutMs,
      ),
      perRepositoryPerMinute: int(
        ['limits', 'perRepositoryPerMinute'],
        limitsDoc.perRepositoryPerMinute,
        1,
        10_000,
        defaults.limits.perRepositoryPerMinute,
      ),
      revocationsPerMinute: int(
        ['limits', 'revocationsPerMinute'],
        limitsDoc.revocationsPerMinute,
        1,
        100_000,
        defaults.limits.revocationsPerMinute,
      ),
    },
    shutdownGraceMs: int(['shutdownGraceMs'], doc.shutdownGraceMs, 0, 120_000, defaults.shutdownGraceMs),
    clusterServer,
    clusterCaFile:
      doc.clusterCaFile === undefined ? undefined : filePath(['clusterCaFile'], doc.clusterCaFile),
    trustedProxies:
      doc.trustedProxies === undefined ? [] : (readCidrList(r, ['trustedProxies'], doc.trustedProxies) ?? []),
    explainRefusals:
      doc.explainRefusals === undefined
        ? false
        : (r.boolean(['explainRefusals'], doc.explainRefusals) ?? false),
    gateway,
    edge: doc.edge === undefined ? undefined : readEdgeSection(r, doc.edge, filePath),
  };
  // The edge relays the runners' TLS to the broker, which must terminate it itself.
  if (doc.edge !== undefined && insecureHttp)
    r.report(['edge'], 'needs the broker to serve TLS (tls, not insecureHttp)');
  r.finish();
  return deepFreeze(config);
}

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && !url.username && !url.password && !url.search && !url.hash;
  } catch {
    return false;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
