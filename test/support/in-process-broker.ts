// The broker inside the test process (real verifier, real server, real Kubernetes clients under
// the deploy/ RBAC), for tests that inject what a file cannot say: a PolicyEngine of their own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName } from './cluster.js';
import type { BrokerRbac } from './deploy-rbac.js';
import { brokerRequest, type BrokerRequestOptions } from './broker-request.js';
import { selfSignedCert } from './tls.js';

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
  /** The broker's clock (verifier, grants, reaper, gateway); Date.now when absent. */
  now?: () => number;
  /** Gateway mode on a free port, with the broker's certificate (needs https). */
  gateway?: boolean;
  /** Gateway mode: fairness caps other than the defaults (the rest stay default). */
  gatewayLimits?: Partial<import('../../src/broker/config/broker-config.js').GatewayLimits>;
  /** The config's trustedProxies (CIDRs): peers whose X-Forwarded-For names the client. */
  trustedProxies?: string[];
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
  const { GATEWAY_LIMIT_DEFAULTS } = await import('../../src/broker/config/broker-config.js');
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
      ...(o.trustedProxies ? { trustedProxies: o.trustedProxies } : {}),
      ...(o.gateway && tls
        ? {
            gateway: {
              listen: { host: '127.0.0.1', port: 0 },
              // The advertised URL is a placeholder: a listener on port 0 learns its port later.
              url: 'https://127.0.0.1/',
              tls: { certFile: tls.certFile, keyFile: tls.keyFile },
              caFile: tls.certFile,
              limits: { ...GATEWAY_LIMIT_DEFAULTS, ...o.gatewayLimits },
            },
          }
        : {}),
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
  // These brokers always bind their ports (publicListeners is never false here).
  const listening = (url: string | undefined): string => {
    if (url === undefined) throw new Error('the in-process broker binds its public ports');
    return url;
  };
  const url = listening(running.url);
  return {
    ...running,
    url,
    gateway: running.gateway && { ...running.gateway, url: listening(running.gateway.url) },
    metrics,
    auditLines,
    logLines,
    /** The CA that verifies its HTTPS certificate (undefined over plain HTTP). */
    ca: tls?.ca,
    request: <T = unknown>(method: string, path: string, ro: BrokerRequestOptions = {}) =>
      brokerRequest<T>(url, method, path, ro, tls?.ca),
    internalGet: (path: string) => brokerRequest<string>(running.internalUrl, 'GET', path),
    async stop() {
      await running.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type InProcessBroker = Awaited<ReturnType<typeof startInProcessBroker>>;
