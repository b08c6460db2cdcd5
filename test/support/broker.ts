// Helpers to run the broker for real in tests: install exactly the RBAC from deploy/ for a set of
// job namespaces and get the broker a kubeconfig under that RBAC (never admin), then spawn the
// built bundle (build/broker/index.js) with a generated config, policy and TLS certificate.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { dump, load, loadAll } from 'js-yaml';
import { adminKubeconfigPath, clusterEndpoint, coreApi, sleep, uniqueName } from './cluster.js';
import { ensureBrokerBuilt } from './ensure-built.js';

export { ensureBrokerBuilt };

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const deployDir = join(repoRoot, 'deploy');

/** The names deploy/ uses, which installBrokerRbac replaces. */
export const DEPLOY_BROKER_NAMESPACE = 'k8s-ephemeral-access';
export const DEPLOY_JOB_NAMESPACE = 'staging';
export const DEPLOY_BROKER_SA = 'k8s-ea-broker';
/** The deploy/ files that make up the broker's RBAC (and the example job roles). */
export const RBAC_FILES = [
  'serviceaccount.yaml',
  'broker-namespace-rbac.yaml',
  'tokenreview-rbac.yaml',
  'job-namespace-rbac.yaml',
  'job-clusterroles.yaml',
];

type K8sDoc = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  subjects?: { kind: string; name: string; namespace?: string }[];
  roleRef?: { kind: string; name: string };
  rules?: { resourceNames?: string[]; [k: string]: unknown }[];
  [k: string]: unknown;
};

// A JSON round trip, not structuredClone: under jest's VM the latter returns objects of another
// realm, which js-yaml refuses to dump.
const cloneDoc = (d: K8sDoc): K8sDoc => JSON.parse(JSON.stringify(d)) as K8sDoc;

export function readDeployDocs(file: string): K8sDoc[] {
  return (loadAll(readFileSync(join(deployDir, file), 'utf8')) as (K8sDoc | null)[]).filter(
    (d): d is K8sDoc => d !== null,
  );
}

export interface BrokerRbacOptions {
  /** The broker's namespace; created when missing. Default: a fresh unique one. */
  brokerNamespace?: string;
  /** Seconds the broker's token lives. Default 3600. */
  tokenSeconds?: number;
}

export interface BrokerRbac {
  brokerNamespace: string;
  serviceAccount: string;
  /** A kubeconfig authenticating as the broker's ServiceAccount. */
  kubeconfigPath: string;
  token: string;
  /** Every object applied, as YAML (for inspection). */
  appliedYaml: string;
  /** Deletes the cluster-scoped objects, the broker namespace (if created here) and the temp files. */
  cleanup(): Promise<void>;
}

/**
 * Renders deploy/'s RBAC for these namespaces: the broker namespace substituted, one copy of the
 * job-namespace Role/RoleBinding per job namespace, cluster-scoped broker objects suffixed so
 * parallel test files do not share them. Content is otherwise exactly what deploy/ says.
 */
export function renderBrokerRbac(namespaces: string[], brokerNamespace: string): K8sDoc[] {
  const suffix = `-${brokerNamespace}`;
  const out: K8sDoc[] = [];
  const fixSubjects = (d: K8sDoc) => {
    for (const s of d.subjects ?? [])
      if (s.namespace === DEPLOY_BROKER_NAMESPACE) s.namespace = brokerNamespace;
  };
  for (const file of RBAC_FILES) {
    for (const doc of readDeployDocs(file)) {
      const ns = doc.metadata.namespace;
      if (ns === DEPLOY_JOB_NAMESPACE) {
        for (const jobNs of namespaces) {
          const copy = cloneDoc(doc);
          copy.metadata.namespace = jobNs;
          fixSubjects(copy);
          out.push(copy);
        }
      } else if (ns === DEPLOY_BROKER_NAMESPACE) {
        const copy = cloneDoc(doc);
        copy.metadata.namespace = brokerNamespace;
        fixSubjects(copy);
        out.push(copy);
      } else if (doc.kind === 'ClusterRoleBinding' || doc.metadata.name.startsWith('k8s-ea-broker')) {
        const copy = cloneDoc(doc);
        copy.metadata.name += suffix;
        if (copy.roleRef?.name.startsWith('k8s-ea-broker')) copy.roleRef.name += suffix;
        fixSubjects(copy);
        out.push(copy);
      } else {
        out.push(cloneDoc(doc)); // the shared example job ClusterRoles
      }
    }
  }
  return out;
}

export function kubectlAdmin(args: string[], input?: string): string {
  const r = spawnSync('kubectl', ['--kubeconfig', adminKubeconfigPath(), '--request-timeout=30s', ...args], {
    encoding: 'utf8',
    input,
    // Listings of thousands of objects (load tests) exceed the default 1 MiB.
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export async function installBrokerRbac(
  namespaces: string[],
  opts: BrokerRbacOptions = {},
): Promise<BrokerRbac> {
  const brokerNamespace = opts.brokerNamespace ?? uniqueName('k8s-ea-broker');
  const core = coreApi();
  let createdNamespace = false;
  try {
    await core.readNamespace({ name: brokerNamespace });
  } catch {
    await core.createNamespace({
      body: { metadata: { name: brokerNamespace, labels: { 'k8s-ephemeral-access.test/owner': 'jest' } } },
    });
    createdNamespace = true;
  }
  const docs = renderBrokerRbac(namespaces, brokerNamespace);
  const appliedYaml = docs.map((d) => dump(d)).join('---\n');
  kubectlAdmin(['apply', '-f', '-'], appliedYaml);

  const tr = await core.createNamespacedServiceAccountToken({
    name: DEPLOY_BROKER_SA,
    namespace: brokerNamespace,
    body: { spec: { audiences: [], expirationSeconds: opts.tokenSeconds ?? 3600 } },
  });
  const token = tr.status!.token!;
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-broker-rbac-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  const { server, caData } = clusterEndpoint();
  writeFileSync(
    kubeconfigPath,
    dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': caData } }],
      users: [{ name: DEPLOY_BROKER_SA, user: { token } }],
      contexts: [
        { name: 'broker', context: { cluster: 'local', user: DEPLOY_BROKER_SA, namespace: brokerNamespace } },
      ],
      'current-context': 'broker',
    }),
    { mode: 0o600 },
  );
  return {
    brokerNamespace,
    serviceAccount: DEPLOY_BROKER_SA,
    kubeconfigPath,
    token,
    appliedYaml,
    async cleanup() {
      for (const d of docs)
        if (!d.metadata.namespace && d.metadata.name.startsWith('k8s-ea-broker'))
          spawnSync('kubectl', [
            '--kubeconfig',
            adminKubeconfigPath(),
            'delete',
            d.kind.toLowerCase(),
            d.metadata.name,
            '--ignore-not-found',
            '--wait=false',
          ]);
      for (const d of docs)
        if (d.metadata.namespace && !(createdNamespace && d.metadata.namespace === brokerNamespace))
          spawnSync('kubectl', [
            '--kubeconfig',
            adminKubeconfigPath(),
            '-n',
            d.metadata.namespace,
            'delete',
            d.kind.toLowerCase(),
            d.metadata.name,
            '--ignore-not-found',
            '--wait=false',
          ]);
      if (createdNamespace) await core.deleteNamespace({ name: brokerNamespace }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A self-signed certificate for 127.0.0.1 (openssl CLI), for the broker's HTTPS in tests. */
export function selfSignedCert(dir: string): { certFile: string; keyFile: string; ca: Buffer } {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { certFile, keyFile, ca: readFileSync(certFile) };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface BrokerResponse<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  body: T;
  text: string;
}

export interface BrokerRequestOptions {
  token?: string;
  body?: unknown;
  /** Raw body bytes instead of JSON. */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export interface StartBrokerOptions {
  policyYaml: string;
  /** The OIDC issuer URL the broker trusts. */
  issuer: string;
  namespaces: string[];
  rbac: BrokerRbac;
  audience?: string;
  https?: boolean;
  reaperIntervalSeconds?: number;
  /** Extra or overriding top-level config fields. */
  config?: Record<string, unknown>;
  /** Where the bundle is; default build/broker/index.js (built when stale). */
  entry?: string;
}

export interface RunningBroker {
  url: string;
  /** The internal listener (metrics, probes), plain HTTP. */
  internalUrl: string;
  configPath: string;
  process: ChildProcess;
  /** stdout lines (audit events), parsed when JSON. */
  stdout: string[];
  stderr: string[];
  audit(): Record<string, unknown>[];
  request<T = unknown>(method: string, path: string, opts?: BrokerRequestOptions): Promise<BrokerResponse<T>>;
  /** A GET on the internal listener, e.g. /metrics. */
  internalGet(path: string): Promise<BrokerResponse<string>>;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<number | null>;
  exited: Promise<number | null>;
}

export async function startBroker(opts: StartBrokerOptions): Promise<RunningBroker> {
  const entry = opts.entry ?? (await ensureBrokerBuilt());
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-broker-'));
  const https = opts.https ?? false;
  const tls = https ? selfSignedCert(dir) : undefined;
  const port = await freePort();
  const internalPort = await freePort();
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policyYaml);
  const config: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port },
    internalListen: { host: '127.0.0.1', port: internalPort },
    ...(tls ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile } } : { insecureHttp: true }),
    issuers: [opts.issuer],
    audience: opts.audience ?? 'k8s-ephemeral-access',
    leewaySeconds: 5,
    policyFile,
    kubeconfig: opts.rbac.kubeconfigPath,
    brokerNamespace: opts.rbac.brokerNamespace,
    reaper: { intervalSeconds: opts.reaperIntervalSeconds ?? 1, leaseName: 'k8s-ea-reaper' },
    limits: { bodyBytes: 16384, requestTimeoutMs: 10000, perRepositoryPerMinute: 600 },
    shutdownGraceMs: 5000,
    ...opts.config,
  };
  const configPath = join(dir, 'broker-config.yaml');
  writeFileSync(configPath, dump(config));

  const child = spawn(process.execPath, [entry, '--config', configPath], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', POD_NAME: uniqueName('broker-test') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));

  const url = `${https ? 'https' : 'http'}://127.0.0.1:${port}`;
  const request = <T>(method: string, path: string, o: BrokerRequestOptions = {}) =>
    brokerRequest<T>(url, method, path, o, tls?.ca);

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined)
      throw new Error(`broker exited with ${exitCode} before ready:\n${stderr.join('\n')}`);
    const ok = await request('GET', '/readyz').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`broker not ready after 30 s:\n${stderr.join('\n')}`);
    }
    await sleep(100);
  }
  const end = async (signal: NodeJS.Signals) => {
    if (exitCode === undefined) child.kill(signal);
    const code = await exited;
    rmSync(dir, { recursive: true, force: true });
    return code;
  };
  const internalUrl = `http://127.0.0.1:${internalPort}`;
  return {
    url,
    internalUrl,
    configPath,
    process: child,
    stdout,
    stderr,
    audit: () =>
      stdout.flatMap((l) => {
        try {
          const o = JSON.parse(l) as Record<string, unknown>;
          return o.type === 'audit' ? [o] : [];
        } catch {
          return [];
        }
      }),
    request,
    internalGet: (path) => brokerRequest<string>(internalUrl, 'GET', path),
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    exited,
  };
}

/** One HTTP(S) request to the broker (node:http, so a test CA can be trusted without global state). */
export function brokerRequest<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  o: BrokerRequestOptions = {},
  ca?: Buffer,
): Promise<BrokerResponse<T>> {
  const url = new URL(path, baseUrl);
  const payload = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    if (headers['transfer-encoding'] !== 'chunked')
      headers['content-length'] ??= String(Buffer.byteLength(payload));
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolveP, reject) => {
    const req = send(url, { method, headers, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON (e.g. /metrics) */
        }
        resolveP({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Every object carrying the broker's managed-by label in these namespaces, as kind/name strings. */
export function managedObjects(namespaces: string[]): string[] {
  const out: string[] = [];
  for (const ns of namespaces) {
    const text = kubectlAdmin([
      '-n',
      ns,
      'get',
      'serviceaccounts,roles,rolebindings',
      '-l',
      'app.kubernetes.io/managed-by=k8s-ephemeral-access',
      '-o',
      'json',
    ]);
    const list = load(text) as {
      items: { kind: string; metadata: { name: string; deletionTimestamp?: string } }[];
    };
    for (const i of list.items)
      if (!i.metadata.deletionTimestamp) out.push(`${ns}/${i.kind}/${i.metadata.name}`);
  }
  return out.sort();
}

export interface InProcessBrokerOptions {
  issuer: string;
  policy: import('../../src/broker/types.js').PolicyEngine;
  rbac: BrokerRbac;
  https?: boolean;
  audience?: string;
  reaperIntervalSeconds?: number;
  limits?: Partial<{
    bodyBytes: number;
    requestTimeoutMs: number;
    perRepositoryPerMinute: number;
    revocationsPerMinute: number;
  }>;
  shutdownGraceMs?: number;
  /** The broker's and its verifier's time source (epoch ms), e.g. shifted to age the JWKS cache. */
  now?: () => number;
}

/**
 * The broker in this process (real verifier, real server, real Kubernetes clients under the
 * deploy/ RBAC), for tests that need to inject a policy. Audit lines are collected in `audit`.
 */
export async function startInProcessBroker(o: InProcessBrokerOptions) {
  const { runBroker } = await import('../../src/broker/runtime.js');
  const { createTokenVerifier } = await import('../../src/broker/auth/token-verifier.js');
  const { createLogger } = await import('../../src/broker/logger.js');
  const { createAuditLog } = await import('../../src/broker/audit.js');
  const { createMetrics } = await import('../../src/broker/metrics.js');
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-inproc-'));
  const tls = o.https === false ? undefined : selfSignedCert(dir);
  const auditLines: Record<string, unknown>[] = [];
  const logLines: Record<string, unknown>[] = [];
  const metrics = createMetrics();
  const running = await runBroker(
    {
      listen: { host: '127.0.0.1', port: 0 },
      internalListen: { host: '127.0.0.1', port: 0 },
      ...(tls ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile } } : { insecureHttp: true }),
      kubeconfig: o.rbac.kubeconfigPath,
      brokerNamespace: o.rbac.brokerNamespace,
      reaper: { intervalSeconds: o.reaperIntervalSeconds ?? 1, leaseName: 'k8s-ea-reaper' },
      limits: { bodyBytes: 16384, requestTimeoutMs: 10_000, perRepositoryPerMinute: 600, ...o.limits },
      shutdownGraceMs: o.shutdownGraceMs ?? 5000,
    },
    {
      verifier: createTokenVerifier({
        issuers: [{ issuer: o.issuer }],
        audience: o.audience ?? 'k8s-ephemeral-access',
        leewaySeconds: 5,
        now: o.now,
      }),
      policy: o.policy,
      logger: createLogger({ write: (l) => void logLines.push(JSON.parse(l) as Record<string, unknown>) }),
      audit: createAuditLog((l) => void auditLines.push(JSON.parse(l) as Record<string, unknown>)),
      metrics,
      identity: uniqueName('inproc'),
      now: o.now,
    },
  );
  return {
    ...running,
    metrics,
    auditLines,
    logLines,
    request: <T = unknown>(method: string, path: string, ro: BrokerRequestOptions = {}) =>
      brokerRequest<T>(running.url, method, path, ro, tls?.ca),
    internalGet: (path: string) => brokerRequest<string>(running.internalUrl, 'GET', path),
    async stop() {
      await running.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
