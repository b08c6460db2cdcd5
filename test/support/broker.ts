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
  const host = opts.host ?? '127.0.0.1';
  const tls = https ? (opts.tls ?? selfSignedCert(dir, host)) : undefined;
  const port = await freePort();
  const internalPort = await freePort();
  const gatewayPort = opts.gateway ? await freePort() : undefined;
  if (opts.gateway && !tls) throw new Error('gateway mode needs https');
  const gatewayUrl = gatewayPort ? `https://127.0.0.1:${gatewayPort}` : undefined;
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policyYaml);
  const config: Record<string, unknown> = {
    listen: { host, port },
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
  createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));

  const url = `${https ? 'https' : 'http'}://${host}:${port}`;
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
    gatewayUrl,
    internalUrl,
    configPath,
    ca: tls?.ca,
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
