// The broker's configuration file: read once at start into a frozen, typed object. Every problem
// names the file, the line, the key and the fix (docs/configuration.md documents each key).
// Nothing else in the broker reads the environment or the config file. Each field's type, default,
// bounds and hint is one row of a table below (field-table.ts); the checks across fields follow.
import { dirname, resolve } from 'node:path';
import { DEFAULT_AUDIENCE } from '../../shared/api.js';
import { DNS_LABEL, DNS_SUBDOMAIN } from '../../shared/contract.js';
import { issuerUrlProblem } from '../auth/issuer-url.js';
import { MAX_LEEWAY_SECONDS } from '../auth/token-verifier.js';
import { readOperatorFile } from '../yaml-fields/read-file.js';
import { readCidrList } from '../yaml-fields/cidr-list.js';
import { FieldReader, type Mapping } from '../yaml-fields/fields.js';
import { parseYamlSource, type YamlPath } from '../yaml-fields/yaml-source.js';
import {
  AUDIT_LOG_MAX_READ_MIB,
  CONFIG_DEFAULTS as D,
  GATEWAY_LIMIT_DEFAULTS,
  deepFreeze,
  type AuditLogConfig,
  type BrokerConfig,
  type GatewayConfig,
  type GatewayLimits,
} from './broker-config.js';
import {
  boolean,
  file,
  integer,
  name,
  readFields,
  readFilePath,
  readSection,
  string,
  type FileContext,
} from './field-table.js';
import { checkPublicListeners, readEdgeSection } from './edge-section.js';

export { ConfigError } from '../yaml-fields/config-error.js';
export { CONFIG_DEFAULTS, type BrokerConfig } from './broker-config.js';

/**
 * In a cluster the TLS files are a mounted Secret, optional in deploy/ and the chart so that its absence
 * ends here, in the log, rather than in a pod stuck in ContainerCreating: say which Secret and how to make it.
 */
const TLS_FILES_FROM =
  '; deploy/ and the Helm chart (by default) mount them from the Secret k8s-ea-broker-tls (tls.crt, tls.key) at ' +
  '/etc/k8s-ea-tls: create it in the broker namespace with ' +
  '`kubectl create secret tls k8s-ea-broker-tls --cert=<file> --key=<file>` (docs/operations.md)';

const HOST = /^[A-Za-z0-9.:-]+$/;
const NOT_A_HOST = 'is not an IP address or host name';
/** Audiences of other relying parties: a broker sharing one would accept tokens minted for them. */
const FOREIGN_AUDIENCES = [
  /^https:\/\/github\.com\//i,
  /^sts\.amazonaws\.com$/i,
  /^api:\/\/AzureADTokenExchange$/i,
  /iam\.googleapis\.com/i,
];

const listenFields = (d: { host: string; port: number }) => ({
  host: name(HOST, NOT_A_HOST, d.host),
  port: integer(0, 65535, d.port),
});

/** The top level's plain fields (the sections and cross-field rules are read apart). */
const TOP_FIELDS = {
  insecureHttp: boolean(false),
  audience: name(/^\S{1,256}$/, 'must be one word without spaces', D.audience),
  leewaySeconds: integer(0, MAX_LEEWAY_SECONDS, D.leewaySeconds),
  policyFile: file(),
  kubeconfig: file(),
  brokerNamespace: name(DNS_LABEL, 'is not a namespace name (DNS-1123 label)', D.brokerNamespace),
  shutdownGraceMs: integer(0, 120_000, D.shutdownGraceMs),
  clusterServer: string,
  clusterCaFile: file(),
  explainRefusals: boolean(false),
  publicListeners: boolean(true),
};

const REAPER_FIELDS = {
  intervalSeconds: integer(1, 3600, D.reaper.intervalSeconds),
  leaseName: name(
    DNS_SUBDOMAIN,
    'is not a valid Lease name (lowercase DNS-1123 subdomain)',
    D.reaper.leaseName,
  ),
};

const LIMIT_FIELDS = {
  bodyBytes: integer(1024, 1_048_576, D.limits.bodyBytes),
  requestTimeoutMs: integer(1000, 120_000, D.limits.requestTimeoutMs),
  perRepositoryPerMinute: integer(1, 10_000, D.limits.perRepositoryPerMinute),
  revocationsPerMinute: integer(1, 100_000, D.limits.revocationsPerMinute),
};

const GATEWAY_LIMIT_FIELDS = Object.fromEntries(
  Object.entries(GATEWAY_LIMIT_DEFAULTS).map(([key, fallback]) => [
    key,
    integer(1, key === 'upstreamWaitMs' ? 60_000 : 100_000, fallback),
  ]),
) as Record<keyof GatewayLimits, ReturnType<typeof integer>>;

/** The top level's keys besides policyFile, in the order a misspelt key's message lists them. */
const OPTIONAL_KEYS = [
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
  'publicListeners',
  'auditLog',
];

/** Reads and validates the config file at `path`. Throws ConfigError. */
export function loadConfig(path: string): BrokerConfig {
  const file = resolve(path);
  const text = readOperatorFile(path, 'config file', file).toString('utf8');
  return parseConfig(text, file);
}

/** Validates config YAML; relative paths resolve against the directory of `fileName`. */
export function parseConfig(text: string, fileName: string): BrokerConfig {
  const source = parseYamlSource(text, fileName);
  const r = new FieldReader(source);
  const ctx: FileContext = { r, baseDir: dirname(resolve(fileName)) };
  const doc = r.mapping([], source.value, { required: ['policyFile'], optional: OPTIONAL_KEYS });
  if (!doc) {
    r.finish();
    throw new Error('unreachable');
  }
  const top = readFields(ctx, [], doc, TOP_FIELDS);
  const listen = readSection(ctx, ['listen'], doc.listen, listenFields(D.listen));
  const internalListen = readSection(
    ctx,
    ['internalListen'],
    doc.internalListen,
    listenFields(D.internalListen),
  );
  if (internalListen.port !== 0 && internalListen.port === listen.port)
    r.report(['internalListen', 'port'], 'must differ from listen.port: metrics never share the public port');
  const tls = readTls(ctx, doc, top.insecureHttp);
  checkAudience(r, top.audience);
  if (top.clusterServer !== undefined && !isHttpsUrl(top.clusterServer))
    r.report(
      ['clusterServer'],
      `${JSON.stringify(top.clusterServer)} must be an https:// URL of the API server, e.g. https://k8s.example.com:6443`,
    );
  const config: BrokerConfig = {
    ...top,
    configFile: resolve(fileName),
    listen,
    internalListen,
    tls,
    issuers: readIssuers(r, doc.issuers).map((issuer) => ({ issuer })),
    policyFile: top.policyFile ?? '',
    reaper: readSection(ctx, ['reaper'], doc.reaper, REAPER_FIELDS),
    limits: readSection(ctx, ['limits'], doc.limits, LIMIT_FIELDS),
    trustedProxies:
      doc.trustedProxies === undefined ? [] : (readCidrList(r, ['trustedProxies'], doc.trustedProxies) ?? []),
    gateway:
      doc.gateway === undefined
        ? undefined
        : readGateway(ctx, doc.gateway, tls, [listen.port, internalListen.port]),
    edge:
      doc.edge === undefined ? undefined : readEdgeSection(r, doc.edge, (p, v) => readFilePath(ctx, p, v)),
    auditLog: doc.auditLog === undefined ? undefined : readAuditLog(ctx, doc.auditLog),
  };
  // The gateway counts its calls itself; the audit log is read for direct-mode grants only.
  if (doc.auditLog !== undefined && doc.gateway !== undefined)
    r.report(['auditLog'], 'is for direct mode only: in gateway mode the gateway counts the calls itself');
  // The edge relays the runners' TLS to the broker, which must terminate it itself.
  if (doc.edge !== undefined && top.insecureHttp)
    r.report(['edge'], 'needs the broker to serve TLS (tls, not insecureHttp)');
  checkPublicListeners(r, doc, top.publicListeners);
  r.finish();
  return deepFreeze(config);
}

/** tls, or insecureHttp: exactly one of them. */
function readTls(ctx: FileContext, doc: Mapping, insecureHttp: boolean): BrokerConfig['tls'] {
  const { r } = ctx;
  if (doc.tls === undefined) {
    if (!insecureHttp)
      r.report(
        [],
        'needs tls: { certFile, keyFile } (or insecureHttp: true, only behind a TLS-terminating proxy or in tests)',
      );
    return undefined;
  }
  if (insecureHttp) r.report(['insecureHttp'], 'cannot be true together with tls; remove one of them');
  return readTlsFiles(ctx, ['tls'], doc.tls, TLS_FILES_FROM);
}

function readTlsFiles(
  ctx: FileContext,
  path: string[],
  value: unknown,
  whereFrom?: string,
): { certFile: string; keyFile: string } | undefined {
  const t = ctx.r.mapping(path, value, { required: ['certFile', 'keyFile'] });
  const certFile = t && readFilePath(ctx, [...path, 'certFile'], t.certFile, whereFrom);
  const keyFile = t && readFilePath(ctx, [...path, 'keyFile'], t.keyFile, whereFrom);
  return certFile && keyFile ? { certFile, keyFile } : undefined;
}

function readIssuers(r: FieldReader, value: unknown): string[] {
  if (value === undefined) return [...D.issuers];
  const read = (path: YamlPath, item: unknown) => {
    const issuer = r.string(path, item);
    const problem = issuer === undefined ? undefined : issuerUrlProblem(issuer);
    return problem ? r.report(path, `${JSON.stringify(issuer)} ${problem}`) : issuer;
  };
  return r.list(['issuers'], value, read, { nonEmpty: true, unique: true }) ?? [];
}

function checkAudience(r: FieldReader, audience: string): void {
  if (FOREIGN_AUDIENCES.some((re) => re.test(audience)))
    r.report(
      ['audience'],
      `${JSON.stringify(audience)} is another service's audience; choose one unique to this broker, e.g. "${DEFAULT_AUDIENCE}"`,
    );
}

function readGateway(
  ctx: FileContext,
  value: unknown,
  brokerTls: BrokerConfig['tls'],
  takenPorts: number[],
): GatewayConfig | undefined {
  const { r } = ctx;
  const g = r.mapping(['gateway'], value, {
    required: ['url'],
    optional: ['listen', 'tls', 'caFile', 'limits'],
  });
  if (!g) return undefined;
  const limits = readGatewayLimits(ctx, g.limits);
  const listen = readSection(ctx, ['gateway', 'listen'], g.listen, listenFields(D.gatewayListen));
  if (listen.port !== 0 && takenPorts.includes(listen.port))
    r.report(['gateway', 'listen', 'port'], 'must differ from listen.port and internalListen.port');
  const url = r.string(['gateway', 'url'], g.url);
  if (url !== undefined && !isHttpsUrl(url))
    r.report(
      ['gateway', 'url'],
      `${JSON.stringify(url)} must be the https:// URL jobs reach the gateway at, e.g. https://k8s-gateway.example.com`,
    );
  const tls = g.tls === undefined ? brokerTls : readTlsFiles(ctx, ['gateway', 'tls'], g.tls);
  const caFile = g.caFile === undefined ? undefined : readFilePath(ctx, ['gateway', 'caFile'], g.caFile);
  return { listen, url: url ?? '', ...(tls ? { tls } : {}), ...(caFile ? { caFile } : {}), limits };
}

/** gateway.limits: each key optional, each a count (or ms) within sane bounds. */
function readGatewayLimits(ctx: FileContext, value: unknown): GatewayLimits {
  const limits = readSection(ctx, ['gateway', 'limits'], value, GATEWAY_LIMIT_FIELDS);
  if (limits.longRunningPerGrant > limits.longRunningPerRepository)
    ctx.r.report(['gateway', 'limits', 'longRunningPerGrant'], 'must not exceed longRunningPerRepository');
  if (limits.requestsPerGrant > limits.requestsPerRepository)
    ctx.r.report(['gateway', 'limits', 'requestsPerGrant'], 'must not exceed requestsPerRepository');
  return limits;
}

const AUDIT_LOG_FIELDS = {
  file: file(),
  maxReadMiB: integer(1, 4096, AUDIT_LOG_MAX_READ_MIB),
};

/** auditLog: the file (required, must exist at start) and the read bound. */
function readAuditLog(ctx: FileContext, value: unknown): AuditLogConfig | undefined {
  const a = ctx.r.mapping(['auditLog'], value, { required: ['file'], optional: ['maxReadMiB'] });
  if (!a) return undefined;
  const { file: path, maxReadMiB } = readFields(ctx, ['auditLog'], a, AUDIT_LOG_FIELDS);
  return path === undefined ? undefined : { file: path, maxReadBytes: maxReadMiB * 1024 * 1024 };
}

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && !url.username && !url.password && !url.search && !url.hash;
  } catch {
    return false;
  }
}
