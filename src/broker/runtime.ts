// Running the broker: the app on a listening server, the Kubernetes clients, the reaper, and a
// graceful shutdown. Everything the runtime needs arrives as arguments (start-from-config.ts reads
// them from the config file; tests pass their own), so a test runs the production wiring. Each part
// registers its stop as it starts (stop-stack.ts): a failed start and the shutdown unwind the same
// stack; the shutdown first turns readiness off and drains the listeners within the grace period.
import { clusterEndpointOf, createK8sClients, loadKubeConfig, type ClusterEndpoint } from './kube/clients.js';
import { Reaper } from './grants/reaper.js';
import type { Logger } from './logger.js';
import type { AuditLog } from './audit.js';
import { createMetrics, type BrokerMetrics } from './metrics.js';
import { listen, serveUnbound, type ServingServer } from './net/server.js';
import type { PolicyEngine, TokenVerifier } from './types.js';
import { createBrokerApp, type BrokerApp } from './app.js';
import { createGrantWork } from './grant-work.js';
import { createAddressSet } from './net/cidr.js';
import { startLivePolicy, type LivePolicy, type PolicyFollower } from './live-policy.js';
import { errorMessage } from '../shared/errors.js';
import { startPolicyReload, type PolicyReloadOptions } from './policy-reload.js';
import { clientAddressOf } from './http/client-address.js';
import {
  gatewayEndpoint,
  gatewayTokenAudience,
  startGateway,
  type RunningGateway,
} from './gateway/start-gateway.js';
import { reportInClusterAddress } from './kube/in-cluster-address.js';
import type { K8sClients } from './kube/clients.js';
import type { KubeConfig } from '@kubernetes/client-node';
import { closeOnce, StopStack } from './stop-stack.js';
import type { AuditLogConfig, BrokerLimits, GatewayConfig } from './config/broker-config.js';
import { InlineRoles } from './grants/inline-roles.js';
import { SharedSelfRevoke } from './grants/shared-self-revoke.js';
import { guardProbe } from './grants/self-revoke-probe.js';
import { Server as TlsServer } from 'node:tls';
import type { EdgeTunnelConfig } from './config/edge-section.js';
import { startEdgeTunnels, type RunningEdgeTunnels } from './edge/start-edge-tunnels.js';
import { jwtRecordKeepAfterExpiry } from './grants/replay-ledger.js';
import { DEFAULT_LEEWAY_SECONDS } from './auth/token-verifier.js';
import { createGrantUsage, type GrantUsageTracker, type UsageReporter } from './usage/grant-usage.js';
import { createAuditLogUsage } from './usage/audit-log-usage.js';

/** The config fields the runtime needs (a structural subset of config/broker-config.ts's BrokerConfig). */
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
  /** False (edge mode only): the broker and the gateway bind no port; default true. */
  publicListeners?: boolean;
  /** Direct mode: the API server's audit log, read for each revoked grant's job summary. */
  auditLog?: AuditLogConfig;
}

export interface RunningBroker {
  /** The public listener; undefined with publicListeners: false (nothing to reach but the edge). */
  url: string | undefined;
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

/** What runBroker is given besides the config. */
export interface BrokerParts {
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
}

/** What the parts of one broker share while they start. */
interface Wiring {
  config: BrokerRuntimeConfig;
  parts: BrokerParts;
  kc: KubeConfig;
  k8s: K8sClients;
  metrics: BrokerMetrics;
  stack: StopStack;
}

/**
 * The gateway watches the grants of the running policy's namespaces: a namespace a new policy adds
 * is listed before that policy takes over (or the reload is refused), so its first grant works at
 * the gateway at once; a namespace it drops stops being watched once it has taken over.
 */
function gatewayFollower(gateway: RunningGateway): PolicyFollower {
  return {
    prepare: (next) => gateway.watched.watchAlso(next.namespaces()),
    settle: (running) => gateway.watched.watchOnly(running.namespaces()),
  };
}

/** Direct mode: a grant's calls are in the API server's audit log, if the broker is given it. */
function directModeUsage(w: Wiring, policy: PolicyEngine): UsageReporter {
  return createAuditLogUsage({
    auditLog: w.config.auditLog,
    k8s: w.k8s,
    policy,
    logger: w.parts.logger.child({ component: 'usage' }),
    now: w.parts.now ?? Date.now,
  });
}

/** In gateway mode, the gateway; its close (with the shutdown's grace) is on the stack. */
async function startGatewayPart(
  w: Wiring,
  live: LivePolicy,
  trustedProxies: ReturnType<typeof createAddressSet>,
): Promise<
  { gateway: RunningGateway; close: (graceMs: number) => Promise<void>; usage: GrantUsageTracker } | undefined
> {
  if (!w.config.gateway) return undefined;
  const policy = live.engine;
  // Granted vs used, and shadow mode: each forwarded call, reported when its grant is revoked here.
  const usage = createGrantUsage({
    k8s: w.k8s,
    policy,
    metrics: w.metrics,
    logger: w.parts.logger.child({ component: 'usage' }),
  });
  const gateway = await startGateway(w.config.gateway, {
    k8s: w.k8s,
    namespaces: () => policy.namespaces(),
    brokerNamespace: w.config.brokerNamespace,
    audit: w.parts.audit,
    logger: w.parts.logger.child({ component: 'gateway' }),
    metrics: w.metrics,
    now: w.parts.now,
    recordCall: (grant, info, pathname, status) =>
      usage.recordGatewayCall(
        { grantId: grant.grantId, namespace: grant.namespace, ruleName: grant.ruleName, role: grant.role },
        info,
        pathname,
        status,
      ),
    // Edge-only: no port; the edge's streams are handed to its server (startEdgePart).
    bindPort: w.config.publicListeners !== false,
    // The rule's sourceRanges under the policy running now, asked on every request.
    checkSource: (grant, req) =>
      policy.sourceAllowed(grant.ruleName ?? '', clientAddressOf(req, trustedProxies).address)
        ? undefined
        : {
            status: 403,
            reason: 'source_not_allowed',
            message: "this grant may not be used from this client's address",
          },
  });
  const close = closeOnce((graceMs: number) => gateway.close(graceMs));
  w.stack.push('gateway', () => close(0));
  live.addFollower(gatewayFollower(gateway));
  return { gateway, close, usage };
}

/**
 * The public and the internal listener, each closed by the stack (the shutdown drains them first).
 * With publicListeners: false the public one binds no port: it serves the edge's streams only.
 */
async function startListeners(w: Wiring, app: BrokerApp) {
  const { config } = w;
  const serving = {
    tls: config.tls,
    insecureHttp: config.insecureHttp,
    requestTimeoutMs: config.limits.requestTimeoutMs,
  };
  const server: ServingServer & { url?: string } =
    config.publicListeners === false
      ? serveUnbound(app.handle, serving)
      : await listen(app.handle, { ...config.listen, ...serving });
  const closeServer = closeOnce((graceMs: number) => server.close(graceMs));
  w.stack.push('public listener', () => closeServer(0));
  // Plain HTTP on purpose: it carries no credential, only counters and probe answers.
  const internal = await listen(app.handleInternal, {
    host: config.internalListen.host,
    port: config.internalListen.port,
    insecureHttp: true,
    requestTimeoutMs: config.limits.requestTimeoutMs,
  });
  w.stack.push('internal listener', () => internal.close(0));
  return { server, closeServer, internal };
}

/**
 * Edge mode's hook: outbound tunnels whose streams go to the broker's and the gateway's HTTPS
 * servers; closed (GOAWAY, then the grace) with the listeners.
 */
function startEdgePart(
  w: Wiring,
  edge: EdgeTunnelConfig,
  server: RunningGateway['server'],
  gateway: RunningGateway | undefined,
): { tunnels: RunningEdgeTunnels; close: (graceMs: number) => Promise<void> } {
  const { config } = w;
  // The streams carry the runners' TLS: only a TLS server of the broker's can take them (config.ts
  // refuses edge mode without tls).
  if (!config.tls || !(server instanceof TlsServer))
    throw new Error('edge mode needs the broker to serve TLS');
  const gatewayTls = config.gateway?.tls;
  const gatewayServer = gateway?.server;
  const tunnels = startEdgeTunnels(
    edge,
    {
      broker: { server, tls: config.tls },
      ...(gatewayServer instanceof TlsServer &&
        gatewayTls && { gateway: { server: gatewayServer, tls: gatewayTls } }),
    },
    w.parts.logger.child({ component: 'edge' }),
  );
  const close = closeOnce((graceMs: number) => tunnels.close(graceMs));
  w.stack.push('edge tunnels', () => close(0));
  return { tunnels, close };
}

/**
 * Direct mode's self-revoke mechanism: the shared Role while its admission guard is verified, the
 * per-grant pair otherwise (grants/shared-self-revoke.ts). Gateway mode makes neither.
 */
async function startSharedSelfRevoke(w: Wiring, policy: PolicyEngine): Promise<SharedSelfRevoke | undefined> {
  if (w.config.gateway) return undefined;
  const shared = new SharedSelfRevoke(w.k8s, {
    namespaces: () => policy.namespaces(),
    probe: guardProbe({ k8s: w.k8s, kc: w.kc }),
    logger: w.parts.logger.child({ component: 'self-revoke' }),
    onChange: (inUse) => w.metrics.selfRevokeShared.set(inUse ? 1 : 0),
  });
  w.stack.push('self-revoke guard', () => shared.stop());
  await shared.start();
  return shared;
}

function newReaper(w: Wiring, policy: PolicyEngine): Reaper {
  const { config, parts } = w;
  return new Reaper(w.k8s, {
    namespaces: () => policy.namespaces(),
    intervalSeconds: config.reaper.intervalSeconds,
    lease: { namespace: config.brokerNamespace, name: config.reaper.leaseName, identity: parts.identity },
    logger: parts.logger.child({ component: 'reaper' }),
    audit: parts.audit,
    metrics: w.metrics,
    now: parts.now,
  });
}

/** What jobs are told to connect to: in gateway mode the gateway's address, never the API server's. */
function endpointFor(w: Wiring): ClusterEndpoint {
  const { config } = w;
  if (config.gateway) return gatewayEndpoint(config.gateway);
  const endpoint = clusterEndpointOf(w.kc, {
    clusterServer: config.clusterServer,
    clusterCaFile: config.clusterCaFile,
  });
  const fromPodConfig = config.kubeconfig === undefined && config.clusterServer === undefined;
  reportInClusterAddress(endpoint.server, fromPodConfig, w.parts.logger, w.metrics);
  return endpoint;
}

function newApp(
  w: Wiring,
  p: {
    policy: PolicyEngine;
    inlineRoles: InlineRoles;
    sharedSelfRevoke: SharedSelfRevoke | undefined;
    grantWork: ReturnType<typeof createGrantWork>;
    trustedProxies: ReturnType<typeof createAddressSet>;
    gateway: RunningGateway | undefined;
    usage: UsageReporter;
  },
): BrokerApp {
  const { config, parts } = w;
  return createBrokerApp({
    inlineRoles: p.inlineRoles,
    sharedSelfRevoke: p.sharedSelfRevoke,
    grantWork: p.grantWork,
    verifier: parts.verifier,
    policy: p.policy,
    k8s: w.k8s,
    endpoint: endpointFor(w),
    liveGrants: p.gateway?.table,
    grantUsage: p.usage,
    gatewayAudience: config.gateway && gatewayTokenAudience(config.gateway),
    logger: parts.logger,
    audit: parts.audit,
    metrics: w.metrics,
    limits: config.limits,
    trustedProxies: p.trustedProxies,
    explainRefusals: config.explainRefusals,
    replayLedger: {
      namespace: config.brokerNamespace,
      keepAfterExpirySeconds: jwtRecordKeepAfterExpiry(config.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS),
    },
    now: parts.now ?? Date.now,
  });
}

export async function runBroker(config: BrokerRuntimeConfig, parts: BrokerParts): Promise<RunningBroker> {
  // Without an edge, a broker that binds no public port could never be reached (config refuses it).
  if (config.publicListeners === false && !config.edge)
    throw new Error('publicListeners: false needs edge mode (an edge section)');
  const kc = loadKubeConfig(config.kubeconfig);
  const metrics = parts.metrics ?? createMetrics({ defaultMetrics: true });
  const stack = new StopStack((name, err) =>
    parts.logger.warn('a part did not stop cleanly', { part: name, error: errorMessage(err) }),
  );
  const w: Wiring = { config, parts, kc, k8s: createK8sClients(kc), metrics, stack };
  try {
    return await startParts(w);
  } catch (err) {
    await stack.unwind();
    throw err;
  }
}

async function startParts(w: Wiring): Promise<RunningBroker> {
  const { config, parts, k8s, metrics, stack } = w;
  if (parts.policy.namespaces().length === 0)
    parts.logger.warn('the policy names no namespaces: every exchange will be refused');
  const live = await startLivePolicy(
    parts.policy,
    { k8s, logger: parts.logger, metrics, now: parts.now },
    parts.policyFile?.sha256,
  );
  stack.push('live policy', () => live.stop());
  const policy = live.engine;
  // Before listening too, so the first grant of each inline role finds its Role; a failure is
  // logged and retried by that grant (and refuses it as today when the broker lacks the rules).
  const inlineRoles = new InlineRoles(k8s, parts.logger.child({ component: 'inline-roles' }));
  const inlineUses = () => policy.inlineRoles?.() ?? [];
  await inlineRoles.ensureAll(inlineUses());
  const grantWork = createGrantWork();
  // Last of all: grant work still running (a rollback) finishes before the process ends.
  stack.push('grant work', () => grantWork.idle());
  const trustedProxies = createAddressSet(config.trustedProxies ?? []);
  const gateway = await startGatewayPart(w, live, trustedProxies);
  const sharedSelfRevoke = await startSharedSelfRevoke(w, policy);
  const app = newApp(w, {
    policy,
    inlineRoles,
    sharedSelfRevoke,
    grantWork,
    trustedProxies,
    gateway: gateway?.gateway,
    usage: gateway?.usage ?? directModeUsage(w, policy),
  });
  const { server, closeServer, internal } = await startListeners(w, app);
  inlineRoles.start(inlineUses);
  stack.push('inline roles', () => inlineRoles.stop());
  const reaper = newReaper(w, policy);
  reaper.start();
  stack.push('reaper', () => reaper.stop());
  const edge = config.edge && startEdgePart(w, config.edge, server.server, gateway?.gateway);
  const reload =
    parts.policyFile &&
    startPolicyReload(live, parts.policyFile, {
      logger: parts.logger.child({ component: 'policy-reload' }),
      metrics,
    });
  if (reload) stack.push('policy reload', () => reload.stop());
  // The file may have changed since it was read for `policy`.
  void reload?.check();
  parts.logger.info('broker listening', {
    url: server.url ?? null,
    internalUrl: internal.url,
    publicListeners: config.publicListeners !== false,
    namespaces: policy.namespaces(),
    identity: parts.identity,
  });
  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    internalUrl: internal.url,
    app,
    reaper,
    gateway: gateway?.gateway,
    edge: edge?.tunnels,
    shutdown() {
      stopping ??= (async () => {
        app.markShuttingDown();
        parts.logger.info('shutting down', { inFlight: server.inFlight(), graceMs: config.shutdownGraceMs });
        reload?.stop();
        // The listeners drain together within the grace; the stack's own closes of them are then done.
        await Promise.all([
          edge?.close(config.shutdownGraceMs),
          closeServer(config.shutdownGraceMs),
          gateway?.close(config.shutdownGraceMs),
        ]);
        await stack.unwind();
        parts.logger.info('stopped');
      })();
      return stopping;
    },
  };
}
