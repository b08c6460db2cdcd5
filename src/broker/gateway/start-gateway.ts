// The gateway's wiring for one replica: the live-grant table and the watches that feed it, the
// TokenReview cache (for the gateway's audience), the grants' upstream credentials, the upstream
// connections, and its own HTTPS listener (never the broker's public port: the two may be exposed
// differently).
import { readFileSync } from 'node:fs';
import type { ClusterEndpoint } from '../kube/clients.js';
import type { AuditLog } from '../audit.js';
import type { K8sClients } from '../kube/clients.js';
import { reviewServiceAccountToken } from '../kube/token-review.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import { listen, serveUnbound, type ServingServer } from '../net/server.js';
import { startGrantWatch, type GrantWatch } from './grant-watch.js';
import { LiveGrants } from './live-grants.js';
import { GATEWAY_LIMIT_DEFAULTS, type GatewayConfig } from '../config/broker-config.js';
import { createGateway, type GatewayDeps } from './proxy.js';
import { TokenReviewCache } from './token-review-cache.js';
import { upstreamOf } from './upstream.js';
import { UpstreamCredentials } from './upstream-credentials.js';
import { requestGrantToken } from '../grants/grant-token.js';
import { credentialIdOf } from '../audit.js';

/**
 * Receiving a whole request body may take this long (a multi-MiB apply from a slow runner); the
 * answer, a watch for instance, is not bounded by it.
 */
export const GATEWAY_REQUEST_TIMEOUT_MS = 60_000;

/**
 * The one audience of grant tokens in gateway mode: the gateway's URL, which every replica shares.
 * The API server accepts only its own audiences, so it refuses these tokens; the gateway reviews
 * them for this audience.
 */
export function gatewayTokenAudience(config: Pick<GatewayConfig, 'url'>): string {
  return config.url;
}

/** How often credentials of grants that are no longer live are dropped from memory. */
const CREDENTIAL_SWEEP_MS = 1_000;

/** What jobs are told in gateway mode: the gateway's URL and CA; the API server's address never. */
export function gatewayEndpoint(config: GatewayConfig): ClusterEndpoint {
  return {
    server: config.url,
    certificateAuthorityData: config.caFile ? readFileSync(config.caFile).toString('base64') : '',
  };
}

export interface RunningGateway {
  /** Where it listens; undefined when it binds no port (edge-only mode). */
  url: string | undefined;
  /** Its HTTPS server (edge mode hands it the runners' streams). */
  server: ServingServer['server'];
  table: LiveGrants;
  /** The grants' upstream credentials this replica holds (how many, never the tokens). */
  credentials: { readonly size: number };
  /** Which namespaces' grants it watches: follows the running policy's (runtime.ts). */
  watched: Pick<GrantWatch, 'watchAlso' | 'watchOnly'>;
  /** Waits up to graceMs for open requests (watches rarely end by themselves), then cuts them. */
  close(graceMs: number): Promise<void>;
}

/** TokenReview of job tokens for the gateway's audience, cached (token-review-cache.ts). */
function tokenReviews(k8s: K8sClients, audience: string, now: () => number): TokenReviewCache {
  return new TokenReviewCache(async (token) => {
    const who = await reviewServiceAccountToken(k8s, token, audience);
    return who?.uid ? { namespace: who.namespace, name: who.name, uid: who.uid } : undefined;
  }, now);
}

/** The grants' own API-server credentials, dropped when a grant leaves the table (and swept every second). */
function upstreamCredentials(k8s: K8sClients, logger: Logger, table: LiveGrants, now: () => number) {
  const credentials = new UpstreamCredentials(
    (grant, seconds) => requestGrantToken(k8s, grant, seconds),
    now,
    (grant, minted) =>
      logger.info('gateway credential minted', {
        grantId: grant.grantId,
        namespace: grant.namespace,
        // The API server's audit log names this id on every call forwarded with it.
        credentialId: credentialIdOf(minted.token),
        expiresAt: minted.tokenExpiresAt.toISOString(),
      }),
  );
  table.onGone((uid) => credentials.drop(uid));
  const sweep = setInterval(
    () => credentials.retainLive((uid) => table.live(uid) !== undefined),
    CREDENTIAL_SWEEP_MS,
  );
  sweep.unref();
  return { credentials, sweep };
}

/** The gateway's HTTPS server: on its own port, or on none (edge-only: the edge's streams alone). */
async function serveGateway(
  handle: Parameters<typeof listen>[0],
  config: GatewayConfig,
  bindPort: boolean,
): Promise<ServingServer & { url?: string }> {
  const serving = {
    tls: config.tls,
    insecureHttp: !config.tls,
    requestTimeoutMs: GATEWAY_REQUEST_TIMEOUT_MS,
  };
  return bindPort ? listen(handle, { ...config.listen, ...serving }) : serveUnbound(handle, serving);
}

export async function startGateway(
  config: GatewayConfig,
  parts: {
    k8s: K8sClients;
    /** The running policy's namespaces, asked on every request; watched as of start (see `watched`). */
    namespaces: () => readonly string[];
    brokerNamespace: string;
    audit: AuditLog;
    logger: Logger;
    metrics: BrokerMetrics;
    now?: () => number;
    checkSource?: GatewayDeps['checkSource'];
    recordCall?: GatewayDeps['recordCall'];
    /** False in edge-only mode: no port at all, only the streams the edge's tunnels hand over. */
    bindPort?: boolean;
  },
): Promise<RunningGateway> {
  const now = parts.now ?? Date.now;
  const table = new LiveGrants(now);
  const watch = await startGrantWatch(parts.k8s, table, {
    namespaces: parts.namespaces(),
    brokerNamespace: parts.brokerNamespace,
    logger: parts.logger,
  });
  const limits = config.limits ?? GATEWAY_LIMIT_DEFAULTS;
  const upstream = upstreamOf(
    parts.k8s.connection,
    { short: limits.upstreamConnections, long: limits.longRunningConnections },
    (lane, queued) => parts.metrics.gatewayUpstreamQueued.set({ lane }, queued),
  );
  const reviews = tokenReviews(parts.k8s, gatewayTokenAudience(config), now);
  const { credentials, sweep } = upstreamCredentials(parts.k8s, parts.logger, table, now);
  const gateway = createGateway({
    table,
    synced: watch.synced,
    reviews,
    credentials,
    namespaces: parts.namespaces,
    upstream,
    audit: parts.audit,
    logger: parts.logger,
    metrics: parts.metrics,
    now,
    checkSource: parts.checkSource,
    recordCall: parts.recordCall,
    limits,
  });
  let server;
  try {
    server = await serveGateway(gateway.handle, config, parts.bindPort !== false);
  } catch (err) {
    clearInterval(sweep);
    watch.stop();
    gateway.stop();
    upstream.close();
    throw err;
  }
  server.server.on('upgrade', (req, socket) => void gateway.handleUpgrade(req, socket));
  // Without a listener Node closes a CONNECT's connection with no answer; the docs promise a 400.
  server.server.on('connect', (req, socket) => void gateway.handleConnect(req, socket));
  const url = server.url ?? null;
  parts.logger.info('gateway listening', { url, advertised: config.url, grants: table.size });
  return {
    url: server.url,
    server: server.server,
    table,
    credentials,
    watched: watch,
    async close(graceMs) {
      await server.close(graceMs);
      clearInterval(sweep);
      credentials.retainLive(() => false);
      gateway.stop();
      watch.stop();
      upstream.close();
    },
  };
}
