// Running the broker: the app on a listening server, the Kubernetes clients, the reaper, and a
// graceful shutdown. Everything the runtime needs arrives as arguments (start-from-config.ts reads
// them from the config file; tests pass their own), so a test runs the production wiring.
import { clusterEndpointOf, createK8sClients, loadKubeConfig } from './k8s/clients.js';
import { Reaper } from './k8s/reaper.js';
import type { Logger } from './logger.js';
import type { AuditLog } from './audit.js';
import { createMetrics, type BrokerMetrics } from './metrics.js';
import { listen } from './http/server.js';
import type { PolicyEngine, TokenVerifier } from './types.js';
import { createBrokerApp, type BrokerApp } from './app.js';
import { createGrantWork } from './grant-work.js';
import { startRoleVetting, withVettedRoles } from './k8s/role-vetting.js';
import { InlineRoles } from './k8s/inline-roles.js';

/** The request limits (config.ts fills every one; tests may leave the revocation rate to its default). */
export interface BrokerLimits {
  bodyBytes: number;
  requestTimeoutMs: number;
  perRepositoryPerMinute: number;
  revocationsPerMinute?: number;
}

/** The config fields the runtime needs (a structural subset of config.ts's BrokerConfig). */
export interface BrokerRuntimeConfig {
  listen: { host: string; port: number };
  /** Metrics (and probes), plain HTTP: keep it off the public network (NetworkPolicy, 127.0.0.1). */
  internalListen: { host: string; port: number };
  tls?: { certFile: string; keyFile: string };
  insecureHttp?: boolean;
  kubeconfig?: string;
  brokerNamespace: string;
  reaper: { intervalSeconds: number; leaseName: string };
  limits: BrokerLimits;
  shutdownGraceMs: number;
  /** The verifier's clock leeway; JWT-use records outlive exp by this plus a margin. */
  leewaySeconds?: number;
  clusterServer?: string;
  clusterCaFile?: string;
}

export interface RunningBroker {
  url: string;
  /** The internal listener: /metrics, /healthz, /readyz. */
  internalUrl: string;
  app: BrokerApp;
  reaper: Reaper;
  /** Readiness off, reaper stopped (lease released), in-flight requests finished or cut at the grace period. */
  shutdown(): Promise<void>;
}

export async function runBroker(
  config: BrokerRuntimeConfig,
  parts: {
    verifier: TokenVerifier;
    policy: PolicyEngine;
    logger: Logger;
    audit: AuditLog;
    metrics?: BrokerMetrics;
    /** The Lease holder identity; the pod name in a cluster. */
    identity: string;
    /**
     * The broker's time source (epoch milliseconds) for grant expiry, the rate limiter and the
     * reaper; Date.now when absent. The verifier has its own, given where it is created.
     */
    now?: () => number;
  },
): Promise<RunningBroker> {
  const kc = loadKubeConfig(config.kubeconfig);
  const k8s = createK8sClients(kc);
  const metrics = parts.metrics ?? createMetrics({ defaultMetrics: true });
  const namespaces = parts.policy.namespaces();
  if (namespaces.length === 0)
    parts.logger.warn('the policy names no namespaces: every exchange will be refused');
  // Before listening: a policy that binds a missing or dangerous role must not serve at all.
  const roleVetting = await startRoleVetting(
    kc,
    k8s,
    parts.policy.namedRoles(),
    parts.logger.child({ component: 'role-vetting' }),
  );
  // Before listening too, so the first grant of each inline role finds its Role; a failure is
  // logged and retried by that grant (and refuses it as today when the broker lacks the rules).
  const inlineRoles = new InlineRoles(k8s, parts.logger.child({ component: 'inline-roles' }));
  const inlineUses = () => parts.policy.inlineRoles?.() ?? [];
  await inlineRoles.ensureAll(inlineUses());
  const grantWork = createGrantWork();
  const app = createBrokerApp({
    inlineRoles,
    grantWork,
    verifier: parts.verifier,
    policy: withVettedRoles(parts.policy, roleVetting),
    k8s,
    endpoint: clusterEndpointOf(kc, {
      clusterServer: config.clusterServer,
      clusterCaFile: config.clusterCaFile,
    }),
    logger: parts.logger,
    audit: parts.audit,
    metrics,
    limits: config.limits,
    replayLedger: {
      namespace: config.brokerNamespace,
      keepAfterExpirySeconds: (config.leewaySeconds ?? 60) + 60,
    },
    now: parts.now,
  });
  const reaper = new Reaper(k8s, {
    namespaces: () => namespaces,
    intervalSeconds: config.reaper.intervalSeconds,
    lease: { namespace: config.brokerNamespace, name: config.reaper.leaseName, identity: parts.identity },
    logger: parts.logger.child({ component: 'reaper' }),
    audit: parts.audit,
    metrics,
    now: parts.now,
  });
  const server = await listen(app.handle, {
    host: config.listen.host,
    port: config.listen.port,
    tls: config.tls,
    insecureHttp: config.insecureHttp,
    requestTimeoutMs: config.limits.requestTimeoutMs,
  }).catch((err: unknown) => {
    roleVetting.stop();
    throw err;
  });
  inlineRoles.start(inlineUses);
  let internal;
  try {
    // Plain HTTP on purpose: it carries no credential, only counters and probe answers.
    internal = await listen(app.handleInternal, {
      host: config.internalListen.host,
      port: config.internalListen.port,
      insecureHttp: true,
      requestTimeoutMs: config.limits.requestTimeoutMs,
    });
  } catch (err) {
    await server.close(0);
    throw err;
  }
  reaper.start();
  parts.logger.info('broker listening', {
    url: server.url,
    internalUrl: internal.url,
    namespaces,
    identity: parts.identity,
  });

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    internalUrl: internal.url,
    app,
    reaper,
    shutdown() {
      stopping ??= (async () => {
        app.markShuttingDown();
        parts.logger.info('shutting down', { inFlight: server.inFlight(), graceMs: config.shutdownGraceMs });
        await Promise.all([server.close(config.shutdownGraceMs), reaper.stop()]);
        roleVetting.stop();
        await inlineRoles.stop();
        // Last, so metrics stay scrapable while the public listener drains.
        await internal.close(0);
        await grantWork.idle();
        parts.logger.info('stopped');
      })();
      return stopping;
    },
  };
}
