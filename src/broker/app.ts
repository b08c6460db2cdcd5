// The broker application: routes, error answers, audit of denials, metrics. Built from its
// dependencies (verifier, policy, Kubernetes clients, clock, logger) and independent of listening,
// so tests can drive `handle` directly or through a server.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { EXCHANGE_PATH, GRANTS_PATH } from '../shared/api.js';
import { BrokerError, errorMessage } from '../shared/errors.js';
import type { PolicyEngine, TokenVerifier } from './types.js';
import {
  clusterEndpointOf,
  loadKubeConfig,
  makeK8sClients,
  type K8sClients,
  type ClusterEndpoint,
} from './k8s/clients.js';
import { Reaper } from './k8s/reaper.js';
import { createLogger, type Logger } from './logger.js';
import { createAuditLog, type AuditEvent, type AuditLog } from './audit.js';
import { loadConfig } from './config.js';
import { loadPolicy } from './policy/index.js';
import { createTokenVerifier } from './auth/token-verifier.js';
import { createMetrics, type BrokerMetrics } from './metrics.js';
import { listen } from './http/server.js';
import { TokenBucketLimiter } from './http/rate-limit.js';
import { discardBody, sendError, sendJson } from './http/io.js';
import { handleExchange, type ExchangeContext } from './http/exchange.js';
import { handleRevoke, type RevokeContext } from './http/revoke.js';

export interface BrokerDeps {
  verifier: TokenVerifier;
  policy: PolicyEngine;
  k8s: K8sClients;
  /** What jobs are told about the API server (URL + CA). */
  endpoint: ClusterEndpoint;
  /** The namespaces grants may live in (where revocation and the reaper look). */
  namespaces: () => readonly string[];
  logger: Logger;
  audit: AuditLog;
  metrics: BrokerMetrics;
  limits: { bodyBytes: number; perRepositoryPerMinute: number };
  /**
   * Where JWT uses are recorded for cross-replica single use (k8s/replay-ledger.ts), and how long
   * after a JWT's exp its record is kept (the verifier's leeway plus a margin). Off when absent.
   */
  replayLedger?: { namespace: string; keepAfterExpirySeconds: number };
  now?: () => number;
  /**
   * Work on a grant that outlives its exchange (the self-revoke objects): shutdown waits for it,
   * and a revocation of that grant waits for it first, so nothing is created after the delete.
   */
  grantWork?: GrantWork;
}

export interface GrantWork {
  track(grantId: string, work: Promise<void>): void;
  /** Settles when this replica has no unfinished work on the grant (never rejects). */
  settled(grantId: string): Promise<void>;
  /** Settles when all tracked work has finished. */
  idle(): Promise<void>;
}

/** Tracks unfinished per-grant work; the promises handed in never reject. */
export function createGrantWork(): GrantWork {
  const pending = new Map<string, Promise<void>>();
  return {
    track(grantId, work) {
      pending.set(grantId, work);
      void work.finally(() => {
        if (pending.get(grantId) === work) pending.delete(grantId);
      });
    },
    settled: async (grantId) => pending.get(grantId),
    idle: async () => {
      await Promise.all(pending.values());
    },
  };
}

export interface BrokerApp {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** From now on /readyz fails, so load balancers stop sending new work. */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
}

const GRANT_PATH = new RegExp(`^${GRANTS_PATH}/([^/]+)$`);

/** A malformed escape (`%`, `%zz`, `%ff`) is not a grant id (404 later), not a crash (500). */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** A failure on our side (or the cluster's), as opposed to a refused request. */
const isServerFault = (err: BrokerError): boolean =>
  err.code === 'ERR_INTERNAL' || err.code === 'ERR_UNAVAILABLE';

function asBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  return new BrokerError('ERR_INTERNAL', 'unexpected_error', errorMessage(err), { cause: err });
}

export function createBrokerApp(deps: BrokerDeps): BrokerApp {
  const now = deps.now ?? Date.now;
  const limiter = new TokenBucketLimiter(deps.limits.perRepositoryPerMinute, now);
  let shuttingDown = false;

  /** The audit line and the log line of a refused request; the client gets the generic message. */
  function refuse(
    e: unknown,
    what: string,
    requestId: string,
    audit: Omit<AuditEvent, 'action'>,
  ): BrokerError {
    const err = asBrokerError(e);
    deps.audit.record({ action: 'denial', requestId, reason: err.reason, code: err.code, ...audit });
    deps.logger[isServerFault(err) ? 'error' : 'info'](`${what} refused`, {
      requestId,
      code: err.code,
      reason: err.reason,
      detail: err.message,
      cause: err.cause === undefined ? undefined : errorMessage(err.cause),
    });
    return err;
  }

  async function exchange(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const started = now();
    const ctx: ExchangeContext = { requestId };
    let result = 'granted';
    try {
      const body = await handleExchange(deps, limiter, req, ctx);
      sendJson(res, 200, body, { 'x-request-id': requestId });
    } catch (e) {
      const err = refuse(e, 'exchange', requestId, {
        claims: ctx.claims,
        namespace: ctx.request?.namespace,
        role: ctx.request?.role,
      });
      const denied = !isServerFault(err);
      result = denied ? 'denied' : 'error';
      if (denied) deps.metrics.denials.inc({ reason: err.reason });
      const retry = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
      discardBody(req);
      sendError(
        res,
        err,
        requestId,
        retry ? { 'retry-after': String(retry), 'x-request-id': requestId } : { 'x-request-id': requestId },
      );
    } finally {
      deps.metrics.exchanges.inc({ result });
      deps.metrics.exchangeSeconds.observe({ result }, (now() - started) / 1000);
    }
  }

  async function revoke(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    grantId: string,
  ): Promise<void> {
    const ctx: RevokeContext = { requestId };
    try {
      const body = await handleRevoke(deps, req, grantId, ctx);
      sendJson(res, 200, body, { 'x-request-id': requestId });
    } catch (e) {
      const err = refuse(e, 'revocation', requestId, {
        claims: ctx.claims,
        grantId: ctx.grantId,
        by: ctx.by,
        request: 'revoke',
      });
      sendError(res, err, requestId, { 'x-request-id': requestId });
    }
  }

  return {
    get shuttingDown() {
      return shuttingDown;
    },
    markShuttingDown() {
      shuttingDown = true;
    },
    async handle(req, res) {
      const requestId = randomUUID();
      const path = new URL(req.url ?? '/', 'http://broker').pathname;
      const method = req.method ?? 'GET';
      try {
        if (path === '/healthz' && method === 'GET') return sendJson(res, 200, { status: 'ok' });
        if (path === '/readyz' && method === 'GET')
          return shuttingDown
            ? sendJson(res, 503, { status: 'shutting down' })
            : sendJson(res, 200, { status: 'ok' });
        if (path === '/metrics' && method === 'GET') {
          const text = await deps.metrics.registry.metrics();
          res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
          res.end(text);
          return;
        }
        if (path === EXCHANGE_PATH && method === 'POST') return await exchange(req, res, requestId);
        const m = GRANT_PATH.exec(path);
        if (m && method === 'DELETE') return await revoke(req, res, requestId, decodePathSegment(m[1]!));
        discardBody(req);
        sendError(res, new BrokerError('ERR_NOT_FOUND', 'no_such_route'), requestId);
      } catch (e) {
        deps.logger.error('request failed', { requestId, error: errorMessage(e) });
        if (!res.headersSent) sendError(res, asBrokerError(e), requestId);
        else res.destroy();
      }
    },
  };
}

// ---- Running the broker: wiring the app to a listening server, the reaper and signals. ----

/** The config fields the runtime needs (a structural subset of config.ts's BrokerConfig). */
export interface BrokerRuntimeConfig {
  listen: { host: string; port: number };
  tls?: { certFile: string; keyFile: string };
  insecureHttp?: boolean;
  kubeconfig?: string;
  brokerNamespace: string;
  reaper: { intervalSeconds: number; leaseName: string };
  limits: { bodyBytes: number; requestTimeoutMs: number; perRepositoryPerMinute: number };
  shutdownGraceMs: number;
  /** The verifier's clock leeway; JWT-use records outlive exp by this plus a margin. */
  leewaySeconds?: number;
  clusterServer?: string;
  clusterCaFile?: string;
}

export interface RunningBroker {
  url: string;
  app: BrokerApp;
  reaper: Reaper;
  /** Readiness off, reaper stopped (lease released), in-flight requests finished or cut at the grace period. */
  shutdown(): Promise<void>;
}

/** The namespaces a policy can grant into: the union of its rules' namespaces. */
export function policyNamespaces(policy: PolicyEngine): string[] {
  const rules = (policy as { rules?: unknown }).rules;
  if (!Array.isArray(rules)) return [];
  const all = new Set<string>();
  for (const r of rules as { namespaces?: unknown }[])
    if (Array.isArray(r.namespaces)) for (const n of r.namespaces) if (typeof n === 'string') all.add(n);
  return [...all].sort();
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
    now?: () => number;
  },
): Promise<RunningBroker> {
  const kc = loadKubeConfig(config.kubeconfig);
  const k8s = makeK8sClients(kc);
  const metrics = parts.metrics ?? createMetrics({ defaultMetrics: true });
  const namespaces = policyNamespaces(parts.policy);
  if (namespaces.length === 0)
    parts.logger.warn('the policy names no namespaces: every exchange will be refused');
  const grantWork = createGrantWork();
  const app = createBrokerApp({
    grantWork,
    verifier: parts.verifier,
    policy: parts.policy,
    k8s,
    endpoint: clusterEndpointOf(kc, {
      clusterServer: config.clusterServer,
      clusterCaFile: config.clusterCaFile,
    }),
    namespaces: () => namespaces,
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
  });
  reaper.start();
  parts.logger.info('broker listening', { url: server.url, namespaces, identity: parts.identity });

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    app,
    reaper,
    shutdown() {
      stopping ??= (async () => {
        app.markShuttingDown();
        parts.logger.info('shutting down', { inFlight: server.inFlight(), graceMs: config.shutdownGraceMs });
        await Promise.all([server.close(config.shutdownGraceMs), reaper.stop()]);
        await grantWork.idle();
        parts.logger.info('stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Starts the broker from its config file: config → policy → verifier → server + reaper, and
 * SIGTERM/SIGINT for a graceful stop. Resolves once listening; the process then lives on.
 */
export async function startBrokerFromConfigFile(
  configPath: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningBroker> {
  const logger = createLogger({ level: env.LOG_LEVEL === 'debug' ? 'debug' : 'info' });
  const config = loadConfig(configPath);
  const policy = loadPolicy(config.policyFile);
  const verifier = createTokenVerifier({
    issuers: config.issuers,
    audience: config.audience,
    leewaySeconds: config.leewaySeconds,
  });
  const running = await runBroker(config, {
    verifier,
    policy,
    logger,
    audit: createAuditLog(),
    identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
  });
  const onSignal = (signal: string) => {
    logger.info('signal received', { signal });
    void running.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('shutdown failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return running;
}
