// The built broker bundle (build/broker/index.js) run for real in tests: spawned with a generated
// config, policy file and TLS certificate, under a BrokerRbac from deploy-rbac.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { dump } from 'js-yaml';
import { sleep, uniqueName } from './cluster.js';
import type { BrokerRbac } from './deploy-rbac.js';
import { brokerRequest, type BrokerRequestOptions, type BrokerResponse } from './broker-request.js';
import { freePort } from './free-port.js';
import { selfSignedCert } from './tls.js';
import { ensureBrokerBuilt } from './ensure-built.js';
import { EXCHANGE_PATH, GRANTS_PATH } from '../../src/shared/api.js';

/** `line` as an audit event, when it is one. */
function auditEvent(line: string): Record<string, unknown>[] {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    return o.type === 'audit' ? [o] : [];
  } catch {
    return [];
  }
}

/** The routes that write one audit line per answer (exchange, revoke, renew). */
const auditedRoute = (method: string, path: string): boolean =>
  (method === 'POST' && path === EXCHANGE_PATH) ||
  (method === 'DELETE' && new RegExp(`^${GRANTS_PATH}/[^/]+$`).test(path)) ||
  (method === 'POST' && new RegExp(`^${GRANTS_PATH}/[^/]+/renew$`).test(path));

export interface StartBrokerOptions {
  policyYaml: string;
  /** The OIDC issuer URL the broker trusts. */
  issuer: string;
  namespaces: string[];
  rbac: BrokerRbac;
  audience?: string;
  https?: boolean;
  /** The IP address to listen on and to put in the certificate; default 127.0.0.1. */
  host?: string;
  reaperIntervalSeconds?: number;
  /** Extra or overriding top-level config fields. */
  config?: Record<string, unknown>;
  /** Gateway mode: a gateway on its own port, with the broker's certificate, its CA handed to jobs. */
  gateway?: boolean;
  /** With https: the caller's certificate (and the CA that verifies it) instead of a throwaway one. */
  tls?: { certFile: string; keyFile: string; ca: Buffer };
  /** Where the bundle is; default build/broker/index.js (built when stale). */
  entry?: string;
}

export interface RunningBroker {
  /** Its public listener (with `publicListeners: false` in `config`, a port nothing listens on). */
  url: string;
  /** The gateway's URL (gateway mode only). */
  gatewayUrl?: string;
  /** The internal listener (metrics, probes), plain HTTP. */
  internalUrl: string;
  configPath: string;
  /** The CA that verifies its HTTPS certificate (undefined over plain HTTP). */
  ca: Buffer | undefined;
  process: ChildProcess;
  /** stdout lines (audit events), parsed when JSON. */
  stdout: string[];
  stderr: string[];
  /** The audit lines read so far. */
  audit(): Record<string, unknown>[];
  /**
   * The first audit line that matches, as soon as it is read from the pipe (rejects after 10 s). Calls made
   * with `request` already wait for their own line; this is for calls made by other processes.
   */
  auditLine(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
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
  const host = opts.host ?? '127.0.0.1';
  const tls = https ? (opts.tls ?? selfSignedCert(dir, host)) : undefined;
  const port = await freePort();
  const internalPort = await freePort();
  const gatewayPort = opts.gateway ? await freePort() : undefined;
  if (opts.gateway && !tls) throw new Error('gateway mode needs https');
  const gatewayUrl = gatewayPort ? `https://127.0.0.1:${gatewayPort}` : undefined;
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policyYaml);
  // Edge-only mode refuses a listen address it would not use.
  const edgeOnly = opts.config?.publicListeners === false;
  const config: Record<string, unknown> = {
    ...(edgeOnly ? {} : { listen: { host, port } }),
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
    ...(gatewayPort && tls
      ? {
          gateway: {
            listen: { host: '127.0.0.1', port: gatewayPort },
            url: gatewayUrl,
            caFile: tls.certFile,
          },
        }
      : {}),
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
  const lineWaiters = new Set<(line: string) => void>();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    stdout.push(l);
    for (const wake of lineWaiters) wake(l);
  });
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));

  const url = `${https ? 'https' : 'http'}://${host}:${port}`;
  const auditLines = () => stdout.flatMap(auditEvent);
  const auditLine = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const seen = auditLines().find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolveP, rejectP) => {
      const wake = (l: string) => {
        const found = auditEvent(l).find(match);
        if (!found) return;
        clearTimeout(timer);
        lineWaiters.delete(wake);
        resolveP(found);
      };
      const timer = setTimeout(() => {
        lineWaiters.delete(wake);
        rejectP(new Error(`no matching audit line in ${timeoutMs} ms`));
      }, timeoutMs);
      lineWaiters.add(wake);
    });
  };
  // The broker writes a call's audit line before it answers, but this process may read the answer from
  // the socket before it reads the line from the pipe: a call on an audited route waits for its line.
  const request = async <T>(method: string, path: string, o: BrokerRequestOptions = {}) => {
    const res = await brokerRequest<T>(url, method, path, o, tls?.ca);
    const requestId = res.headers['x-request-id'];
    if (typeof requestId === 'string' && auditedRoute(method, new URL(path, url).pathname))
      await auditLine((l) => l.requestId === requestId);
    return res;
  };

  const internalUrl = `http://127.0.0.1:${internalPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined)
      throw new Error(`broker exited with ${exitCode} before ready:\n${stderr.join('\n')}`);
    // In edge-only mode only the internal listener answers here.
    const ok = await (
      edgeOnly ? brokerRequest(internalUrl, 'GET', '/readyz') : request('GET', '/readyz')
    ).then(
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
  return {
    url,
    gatewayUrl,
    internalUrl,
    configPath,
    ca: tls?.ca,
    process: child,
    stdout,
    stderr,
    audit: auditLines,
    auditLine,
    request,
    internalGet: (path) => brokerRequest<string>(internalUrl, 'GET', path),
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    exited,
  };
}
