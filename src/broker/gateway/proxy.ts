// The gateway: an authenticating reverse proxy in front of the API server. A request goes on only
// with the bearer token of a live grant (live-grants.ts), a token for the gateway's audience that
// the API server itself refuses, and goes on with the same grant's API-server credential alone
// (upstream-credentials.ts), so the API server still applies the grant's RBAC and the broker needs
// no impersonation right. Bodies stream both ways with back-pressure (upstream.ts's lanes), so
// watches and large applies work unbuffered.
//
// Order of checks: the request's shape, then the token's unverified claims against the table (a
// forged token, another identity's or an ended grant's costs no API call), then TokenReview
// (cached), then the table again. Every refusal is a 4xx with a Kubernetes Status body and never
// reaches the API server. When a grant leaves the table (revoked at any replica, reaped, expired)
// its calls end (call-ending.ts); expiry is also checked every second for open requests.
//
// Fairness (fairness.ts): past the token, a call takes a place under its grant's and repository's
// caps (429 when full), then a connection of its lane (connection-gate.ts; 503 after a bounded
// wait). Every call carries an Audit-ID the gateway chose, so its line joins the API server's log
// even when the call is cut.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errorMessage } from '../../shared/errors.js';
import type { AuditEvent, AuditLog } from '../audit.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import { isGrantId } from '../naming.js';
import { claimedFields, claimedIdentity, grantFields, type ClaimedIdentity } from './call-attribution.js';
import { CallEnding } from './call-ending.js';
import { ConcurrencyCaps, GATEWAY_LIMIT_DEFAULTS, type GatewayLimits, type Lane } from './fairness.js';
import { isLongRunning, type KubeRequestInfo } from './kube-request.js';
import { sendStatus, writeStatusToSocket } from './kube-status.js';
import type { LiveGrant, LiveGrants } from './live-grants.js';
import {
  bearerTokenOf,
  checkHeaders,
  checkTarget,
  forwardedRequestHeaders,
  forwardedResponseHeaders,
  UPGRADE_MESSAGE,
  type AcceptedTarget,
  type Refusal,
} from './request-guard.js';
import type { TokenReviewCache } from './token-review-cache.js';
import type { UpstreamCredentials } from './upstream-credentials.js';
import { discoveryRequestHeaders, rewriteDiscovery } from './discovery-rewrite.js';
import type { Upstream } from './upstream.js';

export interface GatewayDeps {
  table: LiveGrants;
  /** False while this namespace's grants cannot be known (grant-watch.ts): refuse, do not guess. */
  synced: (namespace: string) => boolean;
  reviews: TokenReviewCache;
  /** The grant's API-server credential each forwarded request carries instead of the job's token. */
  credentials: Pick<UpstreamCredentials, 'tokenFor'>;
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
  /** Told of every call that went out, with its status (granted vs used, shadow mode: usage/). */
  recordCall?: (grant: LiveGrant, info: KubeRequestInfo, pathname: string, status: number) => void;
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

/** How often open requests are checked against the clock (expiry needs no event). */
const EXPIRY_SWEEP_MS = 1_000;

const TOKEN_REJECTED: Refusal = {
  status: 401,
  reason: 'grant_not_live',
  message: 'the token is not that of a live k8s-ephemeral-access grant (revoked, expired or never issued)',
};

/** Whether a request carries a body to pass on (Node's parser: only with a length or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** A call's end when its grant ended, and a hard cut (shutdown). */
interface OpenCall {
  grantEnded(): void;
  cut(): void;
}

type AuditContext = { requestId: string } & Partial<AuditEvent>;

export function createGateway(deps: GatewayDeps): Gateway {
  const now = deps.now ?? Date.now;
  const { upstream } = deps;
  const limits = deps.limits ?? GATEWAY_LIMIT_DEFAULTS;
  const caps = new ConcurrencyCaps(limits);
  const ended = (uid: string) => deps.table.ended(uid);
  /** uid → its calls in flight (waiting for a connection or forwarded). */
  const open = new Map<string, Set<OpenCall>>();
  let openCount = 0;

  const endAll = (uid: string) => {
    const calls = open.get(uid);
    if (!calls) return;
    open.delete(uid);
    for (const call of calls) call.grantEnded();
  };
  const track = (uid: string, call: OpenCall) => {
    let calls = open.get(uid);
    if (!calls) open.set(uid, (calls = new Set()));
    calls.add(call);
    return () => {
      const set = open.get(uid);
      set?.delete(call);
      if (set?.size === 0) open.delete(uid);
    };
  };
  deps.table.onGone(endAll);
  const sweep = setInterval(() => {
    for (const uid of open.keys()) if (!deps.table.live(uid)) endAll(uid);
  }, EXPIRY_SWEEP_MS);
  sweep.unref();

  const refuse = (req: IncomingMessage, res: ServerResponse, refusal: Refusal, context: AuditContext) => {
    deps.metrics.gatewayRequests.inc({ result: 'refused' });
    deps.metrics.gatewayRefusals.inc({ reason: refusal.reason });
    deps.audit.record({ action: 'denial', request: 'gateway', reason: refusal.reason, ...context });
    // Whatever body came is not read into memory; the connection closes after the answer.
    res.shouldKeepAlive = false;
    req.resume();
    sendStatus(res, refusal.status, refusal.message, refusal.retryAfterSeconds);
  };

  /** The live grant this request may act as, or why not (with what the token claimed). */
  const authenticate = async (
    req: IncomingMessage,
  ): Promise<{ grant: LiveGrant } | (Refusal & { claimed?: ClaimedIdentity })> => {
    const token = bearerTokenOf(req.rawHeaders);
    if (typeof token !== 'string') return token;
    const claimed = claimedIdentity(token);
    if (!claimed || !isGrantId(claimed.name) || !deps.namespaces().includes(claimed.namespace))
      return { ...TOKEN_REJECTED, claimed };
    if (!deps.synced(claimed.namespace))
      return {
        status: 503,
        reason: 'gateway_not_synced',
        message: 'the gateway cannot read grants right now; retry',
        claimed,
      };
    const before = deps.table.live(claimed.uid);
    if (!before || before.grantId !== claimed.name || before.namespace !== claimed.namespace)
      return { ...TOKEN_REJECTED, claimed };
    const who = await deps.reviews.identify(token, claimed.expiresAt);
    if (!who || who.uid !== claimed.uid || who.namespace !== claimed.namespace || who.name !== claimed.name)
      return { ...TOKEN_REJECTED, reason: 'kubernetes_token_rejected', claimed };
    // Again after the TokenReview's await: the grant may have gone meanwhile.
    const grant = deps.table.live(claimed.uid);
    if (!grant) return { ...TOKEN_REJECTED, claimed };
    return { grant };
  };

  /**
   * Whose a request is, for the line of a refusal made before (or without) forwarding: the
   * grant and run when its token proves a live grant (TokenReview, cached), else what it claims.
   */
  const attribution = async (req: IncomingMessage): Promise<Partial<AuditEvent>> => {
    try {
      const auth = await authenticate(req);
      return 'grant' in auth ? grantFields(auth.grant) : claimedFields(auth.claimed, ended);
    } catch {
      return {};
    }
  };

  /**
   * A connection of the call's lane within the configured wait, given up when the client leaves
   * or the grant ends meanwhile; or the refusal to answer.
   */
  const connectionFor = async (
    res: ServerResponse,
    grant: LiveGrant,
    lane: Lane,
  ): Promise<{ release: () => void } | Refusal | undefined> => {
    const stop = new AbortController();
    let ended = false;
    const untrack = track(grant.uid, {
      grantEnded: () => {
        ended = true;
        stop.abort();
      },
      cut: () => stop.abort(),
    });
    const onClose = () => stop.abort();
    res.once('close', onClose);
    const got = await upstream.lanes[lane].gate.acquire(limits.upstreamWaitMs, stop.signal);
    untrack();
    res.off('close', onClose);
    if ('release' in got) return got;
    if (ended) return TOKEN_REJECTED;
    if (got.refused === 'cancelled') return undefined; // the client left: nobody to answer
    return {
      status: 503,
      reason: 'upstream_busy',
      message: `the gateway had no free connection to the API server for ${limits.upstreamWaitMs} ms; retry`,
      retryAfterSeconds: 1,
    };
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    grant: LiveGrant,
    /** The grant's API-server credential (never the job's token). */
    credential: string,
    target: AcceptedTarget,
    requestId: string,
  ) => {
    const started = now();
    const { info } = target;
    const longRunning = isLongRunning(info);
    let bytesIn = 0;
    let bytesOut = 0;
    let status = 0;
    /** The API server's audit id of this call: the gateway sets it, so it is known even if cut. */
    let apiAuditId = requestId;
    let cutBy: string | undefined;
    /** Set once the request is on a connection; until then `abandoned` stops it there. */
    let controller: Dispatcher.DispatchController | undefined;
    let abandoned = false;
    let upstreamComplete = false;
    const endUpstream = () => {
      if (upstreamComplete) return;
      abandoned = true;
      controller?.abort(new Error('the gateway ended the request'));
    };
    const method = req.method ?? 'GET';
    const headers = discoveryRequestHeaders(method, target.pathname, forwardedRequestHeaders(req.headers));
    headers.authorization = `Bearer ${credential}`;
    // The API server takes the caller's Audit-ID as its own: the two logs join on it.
    headers['audit-id'] = apiAuditId;
    // undici frames a body of unknown length as chunked itself, and refuses the header.
    delete headers['transfer-encoding'];

    const cut = (why: string) => {
      cutBy ??= why;
      deps.metrics.gatewayCutStreams.inc();
      endUpstream();
      res.destroy();
    };
    const ending = new CallEnding(longRunning, () => cut('grant ended'));
    const untrack = track(grant.uid, {
      grantEnded: () => {
        if (ending.grantEnded() !== 'not-sent') return;
        // Never sent, and now never will be: the answer a call a moment later would get.
        cutBy = 'grant ended before it was sent';
        endUpstream();
        if (res.headersSent) res.destroy();
        else {
          status = TOKEN_REJECTED.status;
          res.shouldKeepAlive = false;
          sendStatus(res, TOKEN_REJECTED.status, TOKEN_REJECTED.message);
        }
      },
      cut: () => cut('gateway stopped'),
    });
    openCount += 1;
    deps.metrics.gatewayOpenStreams.inc();

    res.once('close', () => {
      openCount -= 1;
      deps.metrics.gatewayOpenStreams.dec();
      untrack();
      ending.done();
      // A complete answer's connection went back to the pool; anything else is ended here.
      endUpstream();
      const seconds = (now() - started) / 1000;
      const sent = ending.wasSent;
      const completed = sent && res.writableFinished;
      deps.metrics.gatewayRequests.inc({ result: status > 0 && completed ? 'forwarded' : 'failed' });
      deps.metrics.gatewaySeconds.observe({ verb: info.verb }, seconds);
      deps.audit.record({
        action: 'gateway',
        requestId,
        ...grantFields(grant),
        verb: info.verb,
        path: target.pathname,
        namespace: info.namespace,
        resource: info.resource,
        name: info.name,
        subresource: info.subresource,
        status,
        // Only a call that went out has an event in the API server's log.
        ...(sent ? { apiAuditId } : { notSent: cutBy ?? 'connection closed' }),
        latencyMs: Math.round(seconds * 1000),
        bytesIn,
        bytesOut,
        ...(sent && !completed ? { incomplete: cutBy ?? 'connection closed' } : {}),
      });
      if (sent) deps.recordCall?.(grant, info, target.pathname, status);
    });
    res.on('error', endUpstream);

    /** The request body, counted on its way; undici reads it with back-pressure. */
    let body: Transform | null = null;
    if (hasBody(req)) {
      body = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytesIn += chunk.length;
          done(null, chunk);
        },
      });
      req.on('error', (err) => body?.destroy(err));
      req.pipe(body);
    }
    // Back-pressure both ways: the request body is read as undici writes it, and the answer's data
    // stops coming while the client cannot take more (no stream object on the answer's way).
    upstream.lanes[longRunning ? 'long' : 'short'].pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: `${upstream.basePath}${target.pathname}${target.search}`,
        headers,
        body,
      },
      rewriteDiscovery(method, target.pathname, {
        onRequestStart(c) {
          controller = c;
          // The last moment to keep a call of an ended grant from the API server (expiry
          // included, which the sweep sees only within a second).
          if (abandoned || ending.grantHasEnded || !deps.table.live(grant.uid)) {
            abandoned = true;
            c.abort(new Error('the gateway ended the request'));
            return;
          }
          ending.markSent();
        },
        onResponseStart(_c, statusCode, upHeaders) {
          if (statusCode < 200) return; // informational (100 Continue): the final answer follows
          status = statusCode;
          const id = upHeaders['audit-id'];
          if (typeof id === 'string') apiAuditId = id;
          res.writeHead(status, forwardedResponseHeaders(upHeaders));
          // A stream (a watch, a follow) sends its headers now, not with its first event, which may
          // be minutes away. A body of known length follows at once: its headers go out with it, in
          // one write (one TLS record, one syscall) instead of two.
          if (upHeaders['content-length'] === undefined) res.flushHeaders();
          ending.markAnswered();
        },
        onResponseData(c, chunk) {
          bytesOut += chunk.length;
          if (!res.write(chunk) && !c.paused) {
            c.pause();
            res.once('drain', () => c.resume());
          }
        },
        onResponseEnd() {
          upstreamComplete = true;
          res.end();
        },
        onResponseError(_c, err) {
          if (res.writableEnded) return;
          if (res.headersSent || cutBy || abandoned) {
            res.destroy();
            return;
          }
          deps.logger.warn('gateway could not reach the API server', { requestId, error: errorMessage(err) });
          status = 502;
          sendStatus(res, 502, 'the gateway could not reach the API server; retry');
        },
      }),
    );
  };

  /** Past the checks and the token: a place under the caps, a connection, then the call itself. */
  const admit = async (
    req: IncomingMessage,
    res: ServerResponse,
    auth: { grant: LiveGrant; credential: string },
    target: AcceptedTarget,
    requestId: string,
  ) => {
    const { grant } = auth;
    const who = { requestId, ...grantFields(grant) };
    const lane: Lane = isLongRunning(target.info) ? 'long' : 'short';
    const place = caps.take({ uid: grant.uid, repositoryId: grant.run.repository_id }, lane);
    if (typeof place !== 'function') return refuse(req, res, { ...place }, { ...who, lane });
    const connection = await connectionFor(res, grant, lane);
    if (!connection || 'reason' in connection) {
      place();
      if (connection) refuse(req, res, connection, { ...who, lane });
      return;
    }
    res.once('close', () => {
      place();
      connection.release();
    });
    // The client may have left while it waited: nothing would end an upstream request made now.
    if (res.destroyed) return;
    forward(req, res, grant, auth.credential, target, requestId);
  };

  /** A refused upgrade or CONNECT: one whole answer on the raw socket, and its line. */
  const refuseOnSocket = async (req: IncomingMessage, socket: Duplex, refusal: Refusal) => {
    socket.on('error', () => undefined);
    deps.metrics.gatewayRequests.inc({ result: 'refused' });
    deps.metrics.gatewayRefusals.inc({ reason: refusal.reason });
    const requestId = randomUUID();
    const who = await attribution(req);
    deps.audit.record({ action: 'denial', request: 'gateway', reason: refusal.reason, requestId, ...who });
    writeStatusToSocket(socket, refusal.status, refusal.message);
  };

  return {
    async handle(req, res) {
      const requestId = randomUUID();
      try {
        const method = req.method ?? 'GET';
        const target = checkTarget(method, req.url ?? '');
        if ('reason' in target) return refuse(req, res, target, { requestId, ...(await attribution(req)) });
        const headerRefusal = checkHeaders(req.headers, req.rawHeaders);
        if (headerRefusal) return refuse(req, res, headerRefusal, { requestId, ...(await attribution(req)) });
        const auth = await authenticate(req);
        if ('reason' in auth)
          return refuse(req, res, auth, { requestId, ...claimedFields(auth.claimed, ended) });
        const sourceRefusal = deps.checkSource?.(auth.grant, req);
        if (sourceRefusal) return refuse(req, res, sourceRefusal, { requestId, ...grantFields(auth.grant) });
        const credential = await deps.credentials.tokenFor(auth.grant);
        // The grant may have ended while its credential was minted.
        if (!deps.table.live(auth.grant.uid))
          return refuse(req, res, TOKEN_REJECTED, { requestId, ...grantFields(auth.grant) });
        // The client may have left while its token was checked: its answer's 'close' has fired
        // already, so nothing would end an upstream request made for it now.
        if (res.destroyed) return;
        await admit(req, res, { grant: auth.grant, credential }, target, requestId);
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
      refuseOnSocket(req, socket, { status: 403, reason: 'upgrade_refused', message: UPGRADE_MESSAGE }),
    handleConnect: (req, socket) =>
      refuseOnSocket(req, socket, {
        status: 400,
        reason: 'path_refused',
        message: 'the gateway serves the Kubernetes API; CONNECT is not one of its methods',
      }),
    openRequests: () => openCount,
    stop() {
      clearInterval(sweep);
      for (const calls of [...open.values()]) for (const call of calls) call.cut();
      open.clear();
    },
  };
}
