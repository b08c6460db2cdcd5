// The gateway: an authenticating reverse proxy in front of the API server. A request goes on only
// with the bearer token of a live grant (live-grants.ts), a token for the gateway's audience that
// the API server itself refuses, and goes on with the same grant's API-server credential alone
// (upstream-credentials.ts), so the API server still applies the grant's RBAC and the broker needs
// no impersonation right. Bodies stream both ways with back-pressure (upstream.ts's lanes), so
// watches and large applies work unbuffered.
//
// Order of checks: the request's shape (request-guard.ts), then the token (authenticate.ts), then
// the grant's source ranges. Every refusal is a 4xx with a Kubernetes Status body and never
// reaches the API server. When a grant leaves the table (revoked at any replica, reaped, expired)
// its calls end (open-requests.ts, call-ending.ts). The call itself: forward.ts.
//
// Fairness (fairness.ts): past the token, a call takes a place under its grant's and repository's
// caps (429 when full), then a connection of its lane (connection-gate.ts; 503 after a bounded
// wait). Every call carries an Audit-ID the gateway chose, so its line joins the API server's log
// even when the call is cut.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../shared/errors.js';
import type { AuditEvent, AuditLog } from '../audit.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import { createAuthenticator, TOKEN_REJECTED, type Authenticator } from './authenticate.js';
import { claimedFields, grantFields } from './call-attribution.js';
import { GATEWAY_LIMIT_DEFAULTS, type GatewayLimits } from '../config/broker-config.js';
import { ConcurrencyCaps, type Lane } from './fairness.js';
import { forward, type ForwardDeps } from './forward.js';
import { isLongRunning } from './kube-request.js';
import { sendStatus, writeStatusToSocket } from './kube-status.js';
import type { LiveGrant, LiveGrants } from './live-grants.js';
import { OpenRequests } from './open-requests.js';
import {
  checkHeaders,
  checkTarget,
  UPGRADE_MESSAGE,
  type AcceptedTarget,
  type Refusal,
} from './request-guard.js';
import type { TokenReviewCache } from './token-review-cache.js';
import type { UpstreamCredentials } from './upstream-credentials.js';
import type { Upstream } from './upstream.js';

export interface GatewayDeps {
  table: LiveGrants;
  /** False while this namespace's grants cannot be known (grant-watch.ts): refuse, do not guess. */
  synced: (namespace: string) => boolean;
  reviews: TokenReviewCache;
  /** The grant's API-server credential each forwarded request carries instead of the job's token. */
  credentials: Pick<UpstreamCredentials, 'tokenFor'>;
  /** The running policy's namespaces, asked on every request. */
  namespaces: () => readonly string[];
  upstream: Upstream;
  audit: AuditLog;
  logger: Logger;
  metrics: BrokerMetrics;
  now?: () => number;
  /**
   * Network boundaries: a refusal when this request may not use this grant from where it comes
   * (the rule's sourceRanges, looked up by `grant.ruleName`). None: any source.
   */
  checkSource?: (grant: LiveGrant, req: IncomingMessage) => Refusal | undefined;
  /** The fairness caps and upstream wait; GATEWAY_LIMIT_DEFAULTS when absent. */
  limits?: GatewayLimits;
}

export interface Gateway {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Connection upgrades (exec, attach, port-forward, cp; SPDY and WebSocket): always refused. */
  handleUpgrade(req: IncomingMessage, socket: Duplex): Promise<void>;
  /** CONNECT (a tunnel request): never a Kubernetes API call, always 400. */
  handleConnect(req: IncomingMessage, socket: Duplex): Promise<void>;
  /** Open forwarded requests right now. */
  openRequests(): number;
  stop(): void;
}

type AuditContext = { requestId: string } & Partial<AuditEvent>;

/** What every step of a request shares: the deps, the open calls, the caps, the authenticator. */
interface Parts extends ForwardDeps {
  deps: GatewayDeps;
  limits: GatewayLimits;
  caps: ConcurrencyCaps;
  auth: Authenticator;
}

function refuse(
  parts: Parts,
  req: IncomingMessage,
  res: ServerResponse,
  refusal: Refusal,
  context: AuditContext,
) {
  parts.metrics.gatewayRequests.inc({ result: 'refused' });
  parts.metrics.gatewayRefusals.inc({ reason: refusal.reason });
  parts.audit.record({ action: 'denial', request: 'gateway', reason: refusal.reason, ...context });
  // Whatever body came is not read into memory; the connection closes after the answer.
  res.shouldKeepAlive = false;
  req.resume();
  sendStatus(res, refusal.status, refusal.message, refusal.retryAfterSeconds);
}

/**
 * A connection of the call's lane within the configured wait, given up when the client leaves or
 * the grant ends meanwhile; or the refusal to answer (undefined: the client left, nobody to answer).
 */
async function connectionFor(
  parts: Parts,
  res: ServerResponse,
  grant: LiveGrant,
  lane: Lane,
): Promise<{ release: () => void } | Refusal | undefined> {
  const stop = new AbortController();
  let ended = false;
  const untrack = parts.open.track(grant.uid, {
    grantEnded: () => {
      ended = true;
      stop.abort();
    },
    cut: () => stop.abort(),
  });
  const onClose = () => stop.abort();
  res.once('close', onClose);
  const { upstreamWaitMs } = parts.limits;
  const got = await parts.upstream.lanes[lane].gate.acquire(upstreamWaitMs, stop.signal);
  untrack();
  res.off('close', onClose);
  if ('release' in got) return got;
  if (ended) return TOKEN_REJECTED;
  if (got.refused === 'cancelled') return undefined;
  return {
    status: 503,
    reason: 'upstream_busy',
    message: `the gateway had no free connection to the API server for ${upstreamWaitMs} ms; retry`,
    retryAfterSeconds: 1,
  };
}

/** Past the checks and the token: a place under the caps, a connection, then the call itself. */
async function admit(
  parts: Parts,
  req: IncomingMessage,
  res: ServerResponse,
  auth: { grant: LiveGrant; credential: string },
  target: AcceptedTarget,
  requestId: string,
) {
  const { grant } = auth;
  const who = { requestId, ...grantFields(grant) };
  const lane: Lane = isLongRunning(target.info) ? 'long' : 'short';
  const place = parts.caps.take({ uid: grant.uid, repositoryId: grant.run.repository_id }, lane);
  if (typeof place !== 'function') return refuse(parts, req, res, { ...place }, { ...who, lane });
  const connection = await connectionFor(parts, res, grant, lane);
  if (!connection || 'reason' in connection) {
    place();
    if (connection) refuse(parts, req, res, connection, { ...who, lane });
    return;
  }
  res.once('close', () => {
    place();
    connection.release();
  });
  // The client may have left while it waited: nothing would end an upstream request made now.
  if (res.destroyed) return;
  forward(parts, { req, res, grant, credential: auth.credential, target, requestId });
}

/** The checks in order; a refusal is answered here, an accepted call goes on to admit(). */
async function serve(parts: Parts, req: IncomingMessage, res: ServerResponse, requestId: string) {
  const { deps, auth } = parts;
  const target = checkTarget(req.method ?? 'GET', req.url ?? '');
  if ('reason' in target)
    return refuse(parts, req, res, target, { requestId, ...(await auth.attribution(req)) });
  const headerRefusal = checkHeaders(req.headers, req.rawHeaders);
  if (headerRefusal)
    return refuse(parts, req, res, headerRefusal, { requestId, ...(await auth.attribution(req)) });
  const who = await auth.authenticate(req);
  if ('reason' in who)
    return refuse(parts, req, res, who, {
      requestId,
      ...claimedFields(who.claimed, (uid) => deps.table.ended(uid)),
    });
  const { grant } = who;
  const sourceRefusal = deps.checkSource?.(grant, req);
  if (sourceRefusal) return refuse(parts, req, res, sourceRefusal, { requestId, ...grantFields(grant) });
  const credential = await deps.credentials.tokenFor(grant);
  // The grant may have ended while its credential was minted.
  if (!deps.table.live(grant.uid))
    return refuse(parts, req, res, TOKEN_REJECTED, { requestId, ...grantFields(grant) });
  // The client may have left while its token was checked: its answer's 'close' has fired already,
  // so nothing would end an upstream request made for it now.
  if (res.destroyed) return;
  await admit(parts, req, res, { grant, credential }, target, requestId);
}

/** A refused upgrade or CONNECT: one whole answer on the raw socket, and its line. */
async function refuseOnSocket(parts: Parts, req: IncomingMessage, socket: Duplex, refusal: Refusal) {
  socket.on('error', () => undefined);
  parts.metrics.gatewayRequests.inc({ result: 'refused' });
  parts.metrics.gatewayRefusals.inc({ reason: refusal.reason });
  const requestId = randomUUID();
  const who = await parts.auth.attribution(req);
  parts.audit.record({ action: 'denial', request: 'gateway', reason: refusal.reason, requestId, ...who });
  writeStatusToSocket(socket, refusal.status, refusal.message);
}

export function createGateway(deps: GatewayDeps): Gateway {
  const limits = deps.limits ?? GATEWAY_LIMIT_DEFAULTS;
  const parts: Parts = {
    deps,
    limits,
    caps: new ConcurrencyCaps(limits),
    auth: createAuthenticator(deps),
    table: deps.table,
    open: new OpenRequests(deps.table),
    upstream: deps.upstream,
    audit: deps.audit,
    logger: deps.logger,
    metrics: deps.metrics,
    now: deps.now ?? Date.now,
  };
  return {
    async handle(req, res) {
      const requestId = randomUUID();
      try {
        await serve(parts, req, res, requestId);
      } catch (err) {
        // TokenReview could not be asked (API server down): unavailable, not "unauthorized".
        deps.logger.error('gateway request failed', { requestId, error: errorMessage(err) });
        if (res.headersSent) res.destroy();
        else {
          deps.metrics.gatewayRequests.inc({ result: 'failed' });
          req.resume();
          sendStatus(res, 503, 'the gateway cannot check tokens right now; retry');
        }
      }
    },
    handleUpgrade: (req, socket) =>
      refuseOnSocket(parts, req, socket, {
        status: 403,
        reason: 'upgrade_refused',
        message: UPGRADE_MESSAGE,
      }),
    handleConnect: (req, socket) =>
      refuseOnSocket(parts, req, socket, {
        status: 400,
        reason: 'path_refused',
        message: 'the gateway serves the Kubernetes API; CONNECT is not one of its methods',
      }),
    openRequests: () => parts.open.forwarding,
    stop: () => parts.open.cutAll(),
  };
}
