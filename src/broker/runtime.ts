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
import { createAddressSet } from './net/cidr.js';
import { startLivePolicy } from './live-policy.js';
import { startPolicyReload, type PolicyReloadOptions } from './policy-reload.js';
import { clientAddressOf } from './http/client-address.js';
import {
  gatewayEndpoint,
  gatewayTokenAudience,
  startGateway,
  type GatewayConfig,
  type RunningGateway,
} from './gateway/start-gateway.js';
import { reportInClusterAddress } from './k8s/in-cluster-address.js';
import { InlineRoles } from './k8s/inline-roles.js';
import { Server as TlsServer } from 'node:tls';
import {
  startEdgeTunnels,
  type EdgeTunnelConfig,
  type RunningEdgeTunnels,
} from './edge/start-edge-tunnels.js';

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
  /** Peers whose X-Forwarded-For names the client (http/client-address.ts); none when absent. */
  trustedProxies?: readonly string[];
  explainRefusals?: boolean;
  /** Gateway mode (gateway/): jobs get the gateway's URL and CA instead of the API server's. */
  gateway?: GatewayConfig;
  /** Edge mode (edge/): the replica dials the edges and serves the runners' streams they open. */
  edge?: EdgeTunnelConfig;
}

export interface RunningBroker {
  url: string;
  /** The internal listener: /metrics, /healthz, /readyz. */
  internalUrl: string;
  app: BrokerApp;
  reaper: Reaper;
  /** In gateway mode: where the gateway listens, and its live-grant table. */
  gateway?: RunningGateway;
  /** In edge mode: the replica's outbound tunnels. */
  edge?: RunningEdgeTunnels;
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
    /** The file `policy` was read from, and its digest: watched and reloaded when it changes. */
    policyFile?: PolicyReloadOptions & { sha256: string };
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
  if (parts.policy.namespaces().length === 0)
    parts.logger.warn('the policy names no namespaces: every exchange will be refused');
  const live = await startLivePolicy(
    parts.policy,
    { kc, k8s, logger: parts.logger, metrics, now: parts.now },
    parts.policyFile?.sha256,
  );
  const policy = live.engine;
  // In gateway mode jobs get the gateway's address, never the API server's.
  const endpoint = config.gateway
    ? gatewayEndpoint(config.gateway)
    : clusterEndpointOf(kc, { clusterServer: config.clusterServer, clusterCaFile: config.clusterCaFile });
  if (!config.gateway) {
    const fromPodConfig = config.kubeconfig === undefined && config.clusterServer === undefined;
    reportInClusterAddress(endpoint.server, fromPodConfig, parts.logger, metrics);
  }
  // Before listening too, so the first grant of each inline role finds its Role; a failure is
  // logged and retried by that grant (and refuses it as today when the broker lacks the rules).
  const inlineRoles = new InlineRoles(k8s, parts.logger.child({ component: 'inline-roles' }));
  const inlineUses = () => policy.inlineRoles?.() ?? [];
  await inlineRoles.ensureAll(inlineUses());
  const grantWork = createGrantWork();
  const trustedProxies = createAddressSet(config.trustedProxies ?? []);
  const stopStarted = async () => {
    live.stop();
    await gateway?.close(0);
  };
  let gateway: RunningGateway | undefined;
  if (config.gateway) {
    gateway = await startGateway(config.gateway, {
      kc,
      k8s,
      namespaces: policy.namespaces(),
      brokerNamespace: config.brokerNamespace,
      audit: parts.audit,
      logger: parts.logger.child({ component: 'gateway' }),
      metrics,
      now: parts.now,
      // The rule's sourceRanges under the policy running now, asked on every request.
      checkSource: (grant, req) =>
        policy.sourceAllowed(grant.ruleName ?? '', clientAddressOf(req, trustedProxies).address)
          ? undefined
          : {
              status: 403,
              reason: 'source_not_allowed',
              message: "this grant may not be used from this client's address",
            },
    }).catch((err: unknown) => {
      live.stop();
      throw err;
    });
  }
  const app = createBrokerApp({
    inlineRoles,
    grantWork,
    verifier: parts.verifier,
    policy,
    k8s,
    endpoint,
    liveGrants: gateway?.table,
    gatewayAudience: config.gateway && gatewayTokenAudience(config.gateway),
    logger: parts.logger,
    audit: parts.audit,
    metrics,
    limits: config.limits,
    trustedProxies,
    explainRefusals: config.explainRefusals,
    replayLedger: {
      namespace: config.brokerNamespace,
      keepAfterExpirySeconds: (config.leewaySeconds ?? 60) + 60,
    },
    now: parts.now,
  });
  const reaper = new Reaper(k8s, {
    namespaces: () => policy.namespaces(),
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
  }).catch(async (err: unknown) => {
    await stopStarted();
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
    await stopStarted();
    throw err;
  }
  reaper.start();
  const edge = config.edge && startEdgeWith(config, config.edge, server.server, gateway, parts.logger);
  const reload =
    parts.policyFile &&
    startPolicyReload(live, parts.policyFile, {
      logger: parts.logger.child({ component: 'policy-reload' }),
      metrics,
    });
  // The file may have changed since it was read for `policy`.
  void reload?.check();
  parts.logger.info('broker listening', {
    url: server.url,
    internalUrl: internal.url,
    namespaces: policy.namespaces(),
    identity: parts.identity,
  });

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    internalUrl: internal.url,
    app,
    reaper,
    gateway,
    edge,
    shutdown() {
      stopping ??= (async () => {
        app.markShuttingDown();
        parts.logger.info('shutting down', { inFlight: server.inFlight(), graceMs: config.shutdownGraceMs });
        reload?.stop();
        await Promise.all([
          edge?.close(config.shutdownGraceMs),
          server.close(config.shutdownGraceMs),
          gateway?.close(config.shutdownGraceMs),
          reaper.stop(),
        ]);
        live.stop();
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

/** Edge mode's hook: the tunnels hand runners' streams to the broker's and the gateway's servers. */
function startEdgeWith(
  config: BrokerRuntimeConfig,
  edge: EdgeTunnelConfig,
  server: RunningGateway['server'],
  gateway: RunningGateway | undefined,
  logger: Logger,
): RunningEdgeTunnels {
  // The streams carry the runners' TLS: only a TLS server of the broker's can take them.
  if (!config.tls || !(server instanceof TlsServer))
    throw new Error('edge mode needs the broker to serve TLS');
  const gatewayTls = config.gateway?.tls;
  const gatewayServer = gateway?.server;
  return startEdgeTunnels(
    edge,
    {
      broker: { server, tls: config.tls },
      ...(gatewayServer instanceof TlsServer &&
        gatewayTls && { gateway: { server: gatewayServer, tls: gatewayTls } }),
    },
    logger.child({ component: 'edge' }),
  );
}
