// The gateway: an authenticating reverse proxy in front of the API server. A request goes on only
// with the bearer token of a live grant (live-grants.ts), a token for the gateway's audience that
// the API server itself refuses, and goes on with the same grant's API-server credential alone
// (upstream-credentials.ts), so the API server still applies the grant's RBAC and the broker needs
// no impersonation right. Bodies
// stream both ways with back-pressure (upstream.ts's pool), so watches and large applies work
// unbuffered.
//
// Order of checks: the request's shape, then the token's unverified claims against the table (a
// forged token, another identity's or an ended grant's costs no API call), then TokenReview
// (cached), then the table again. Every refusal is a 4xx with a Kubernetes Status body and never
// reaches the API server. When a grant leaves the table (revoked at any replica, reaped, expired)
// its open requests are cut at once; expiry is also checked every second for open requests.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Duplex } from 'node:stream';
import { decodeJwt } from 'jose';
import type { Dispatcher } from 'undici';
import { SERVICE_ACCOUNT_USER_PREFIX } from '../../shared/contract.js';
import { errorMessage } from '../../shared/errors.js';
import type { AuditLog } from '../audit.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import { isGrantId } from '../naming.js';
import { describeKubeRequest } from './kube-request.js';
import { sendStatus, writeStatusToSocket } from './kube-status.js';
import type { LiveGrant, LiveGrants } from './live-grants.js';
import {
  bearerTokenOf,
  checkHeaders,
  checkTarget,
  forwardedRequestHeaders,
  forwardedResponseHeaders,
  UPGRADE_MESSAGE,
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
}

export interface Gateway {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Connection upgrades (exec, attach, port-forward, cp; SPDY and WebSocket): always refused. */
  handleUpgrade(req: IncomingMessage, socket: Duplex): void;
  /** Open forwarded requests right now. */
  openRequests(): number;
  stop(): void;
}

/** How often open requests are checked against the clock (expiry needs no event). */
const EXPIRY_SWEEP_MS = 1_000;

interface ClaimedIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** Epoch ms. */
  expiresAt: number;
}

/** What a service-account token says it is, unverified: only to refuse early and pick the grant. */
function claimedIdentity(token: string): ClaimedIdentity | undefined {
  let payload;
  try {
    payload = decodeJwt(token);
  } catch {
    return undefined;
  }
  const k = payload['kubernetes.io'] as { serviceaccount?: { uid?: unknown } } | undefined;
  const uid = k?.serviceaccount?.uid;
  const sub = typeof payload.sub === 'string' ? payload.sub : '';
  if (!sub.startsWith(SERVICE_ACCOUNT_USER_PREFIX) || typeof uid !== 'string') return undefined;
  const [namespace = '', name = '', ...rest] = sub.slice(SERVICE_ACCOUNT_USER_PREFIX.length).split(':');
  if (rest.length > 0 || !namespace || !name || typeof payload.exp !== 'number') return undefined;
  return { namespace, name, uid, expiresAt: payload.exp * 1000 };
}

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

export function createGateway(deps: GatewayDeps): Gateway {
  const now = deps.now ?? Date.now;
  const { upstream } = deps;
  /** uid → the cut functions of its open requests. */
  const open = new Map<string, Set<() => void>>();
  let openCount = 0;

  const cutAll = (uid: string) => {
    const cuts = open.get(uid);
    if (!cuts) return;
    open.delete(uid);
    for (const cut of cuts) cut();
  };
  deps.table.onGone(cutAll);
  const sweep = setInterval(() => {
    for (const uid of open.keys()) if (!deps.table.live(uid)) cutAll(uid);
  }, EXPIRY_SWEEP_MS);
  sweep.unref();

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    refusal: Refusal,
    context: { requestId: string; grantId?: string; namespace?: string },
  ) => {
    deps.metrics.gatewayRequests.inc({ result: 'refused' });
    deps.metrics.gatewayRefusals.inc({ reason: refusal.reason });
    deps.audit.record({ action: 'denial', request: 'gateway', reason: refusal.reason, ...context });
    // Whatever body came is not read into memory; the connection closes after the answer.
    res.shouldKeepAlive = false;
    req.resume();
    sendStatus(res, refusal.status, refusal.message);
  };

  /** The live grant this request may act as, or why not. */
  const authenticate = async (req: IncomingMessage): Promise<{ grant: LiveGrant } | Refusal> => {
    const token = bearerTokenOf(req.rawHeaders);
    if (typeof token !== 'string') return token;
    const claimed = claimedIdentity(token);
    if (!claimed || !isGrantId(claimed.name) || !deps.namespaces().includes(claimed.namespace))
      return TOKEN_REJECTED;
    if (!deps.synced(claimed.namespace))
      return {
        status: 503,
        reason: 'gateway_not_synced',
        message: 'the gateway cannot read grants right now; retry',
      };
    const before = deps.table.live(claimed.uid);
    if (!before || before.grantId !== claimed.name || before.namespace !== claimed.namespace)
      return TOKEN_REJECTED;
    const who = await deps.reviews.identify(token, claimed.expiresAt);
    if (!who || who.uid !== claimed.uid || who.namespace !== claimed.namespace || who.name !== claimed.name)
      return { ...TOKEN_REJECTED, reason: 'kubernetes_token_rejected' };
    // Again after the TokenReview's await: the grant may have gone meanwhile.
    const grant = deps.table.live(claimed.uid);
    if (!grant) return TOKEN_REJECTED;
    return { grant };
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    grant: LiveGrant,
    /** The grant's API-server credential (never the job's token). */
    credential: string,
    target: { pathname: string; search: string },
    requestId: string,
  ) => {
    const started = now();
    const info = describeKubeRequest(req.method ?? 'GET', target.pathname, target.search);
    let bytesIn = 0;
    let bytesOut = 0;
    let status = 0;
    /** The API server's audit id of this call: joins this line to its own audit log. */
    let apiAuditId: string | undefined;
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
    // undici frames a body of unknown length as chunked itself, and refuses the header.
    delete headers['transfer-encoding'];

    const cut = () => {
      cutBy = 'grant ended';
      deps.metrics.gatewayCutStreams.inc();
      endUpstream();
      res.destroy();
    };
    let cuts = open.get(grant.uid);
    if (!cuts) open.set(grant.uid, (cuts = new Set()));
    cuts.add(cut);
    openCount += 1;
    deps.metrics.gatewayOpenStreams.inc();

    res.once('close', () => {
      openCount -= 1;
      deps.metrics.gatewayOpenStreams.dec();
      const set = open.get(grant.uid);
      set?.delete(cut);
      if (set?.size === 0) open.delete(grant.uid);
      // A complete answer's connection went back to the pool; anything else is ended here.
      endUpstream();
      const seconds = (now() - started) / 1000;
      const completed = res.writableFinished;
      deps.metrics.gatewayRequests.inc({ result: status > 0 && completed ? 'forwarded' : 'failed' });
      deps.metrics.gatewaySeconds.observe({ verb: info.verb }, seconds);
      deps.audit.record({
        action: 'gateway',
        requestId,
        claims: grant.run,
        grantId: grant.grantId,
        serviceAccount: grant.grantId,
        serviceAccountUid: grant.uid,
        grantNamespace: grant.namespace,
        policyRule: grant.ruleName,
        verb: info.verb,
        path: target.pathname,
        namespace: info.namespace,
        resource: info.resource,
        name: info.name,
        subresource: info.subresource,
        status,
        apiAuditId,
        latencyMs: Math.round(seconds * 1000),
        bytesIn,
        bytesOut,
        ...(completed ? {} : { incomplete: cutBy ?? 'connection closed' }),
      });
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
    upstream.pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: `${upstream.basePath}${target.pathname}${target.search}`,
        headers,
        body,
      },
      rewriteDiscovery(method, target.pathname, {
        onRequestStart(c) {
          controller = c;
          if (abandoned) c.abort(new Error('the gateway ended the request'));
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

  return {
    async handle(req, res) {
      const requestId = randomUUID();
      try {
        const method = req.method ?? 'GET';
        const target = checkTarget(method, req.url ?? '');
        if ('reason' in target) return refuse(req, res, target, { requestId });
        const headerRefusal = checkHeaders(req.headers, req.rawHeaders);
        if (headerRefusal) return refuse(req, res, headerRefusal, { requestId });
        const auth = await authenticate(req);
        if ('reason' in auth) return refuse(req, res, auth, { requestId });
        const sourceRefusal = deps.checkSource?.(auth.grant, req);
        if (sourceRefusal)
          return refuse(req, res, sourceRefusal, {
            requestId,
            grantId: auth.grant.grantId,
            namespace: auth.grant.namespace,
          });
        const credential = await deps.credentials.tokenFor(auth.grant);
        // The grant may have ended while its credential was minted.
        if (!deps.table.live(auth.grant.uid)) return refuse(req, res, TOKEN_REJECTED, { requestId });
        // The client may have left while its token was checked: its answer's 'close' has fired
        // already, so nothing would end an upstream request made for it now.
        if (res.destroyed) return;
        forward(req, res, auth.grant, credential, target, requestId);
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
    handleUpgrade(_req, socket) {
      deps.metrics.gatewayRequests.inc({ result: 'refused' });
      deps.metrics.gatewayRefusals.inc({ reason: 'upgrade_refused' });
      deps.audit.record({
        action: 'denial',
        request: 'gateway',
        reason: 'upgrade_refused',
        requestId: randomUUID(),
      });
      socket.on('error', () => undefined);
      writeStatusToSocket(socket, 403, UPGRADE_MESSAGE);
    },
    openRequests: () => openCount,
    stop() {
      clearInterval(sweep);
      for (const uid of [...open.keys()]) cutAll(uid);
    },
  };
}
