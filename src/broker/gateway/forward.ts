// One accepted call on its way to the API server and back: the grant's credential instead of the
// job's token, an Audit-ID the gateway chose (so its line joins the API server's log even when the
// call is cut), bodies streamed both ways with back-pressure, and one audit line when the answer
// closes. The pumping is undici's dispatch handler, written out: it is also where a call of an
// ended grant is stopped at the last moment before it is sent (onRequestStart), which a library
// stream (pool.stream()) gives no place for, and the audit line needs to know whether it was sent.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errorMessage } from '../../shared/errors.js';
import type { AuditLog } from '../audit.js';
import type { Logger } from '../logger.js';
import type { BrokerMetrics } from '../metrics.js';
import { TOKEN_REJECTED } from './authenticate.js';
import { grantFields } from './call-attribution.js';
import { CallEnding } from './call-ending.js';
import { discoveryRequestHeaders, rewriteDiscovery } from './discovery-rewrite.js';
import { isLongRunning } from './kube-request.js';
import { sendStatus } from './kube-status.js';
import type { LiveGrant, LiveGrants } from './live-grants.js';
import type { OpenRequests } from './open-requests.js';
import { forwardedRequestHeaders, forwardedResponseHeaders, type AcceptedTarget } from './request-guard.js';
import type { Upstream } from './upstream.js';

export interface ForwardDeps {
  table: Pick<LiveGrants, 'live'>;
  open: OpenRequests;
  upstream: Upstream;
  audit: AuditLog;
  logger: Logger;
  metrics: BrokerMetrics;
  now: () => number;
}

export interface AcceptedCall {
  req: IncomingMessage;
  res: ServerResponse;
  grant: LiveGrant;
  /** The grant's API-server credential (never the job's token). */
  credential: string;
  target: AcceptedTarget;
  requestId: string;
}

/** What one call learns on its way, for its audit line and its ending. */
class CallState {
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  /** The API server's audit id of this call: the gateway sets it, so it is known even if cut. */
  apiAuditId: string;
  cutBy: string | undefined;
  /** Set once the request is on a connection; until then `abandoned` stops it there. */
  controller: Dispatcher.DispatchController | undefined;
  abandoned = false;
  upstreamComplete = false;
  readonly started: number;
  readonly ending: CallEnding;

  constructor(requestId: string, started: number, longRunning: boolean, cut: (why: string) => void) {
    this.apiAuditId = requestId;
    this.started = started;
    this.ending = new CallEnding(longRunning, () => cut('grant ended'));
  }

  /** Stops the upstream request, wherever it is (a complete answer's connection is left alone). */
  endUpstream(): void {
    if (this.upstreamComplete) return;
    this.abandoned = true;
    this.controller?.abort(new Error('the gateway ended the request'));
  }
}

/** Whether a request carries a body to pass on (Node's parser: only with a length or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function upstreamHeaders(call: AcceptedCall): Record<string, string | string[]> {
  const method = call.req.method ?? 'GET';
  const headers = discoveryRequestHeaders(
    method,
    call.target.pathname,
    forwardedRequestHeaders(call.req.headers),
  );
  headers.authorization = `Bearer ${call.credential}`;
  // The API server takes the caller's Audit-ID as its own: the two logs join on it.
  headers['audit-id'] = call.requestId;
  // undici frames a body of unknown length as chunked itself, and refuses the header.
  delete headers['transfer-encoding'];
  return headers;
}

/** The request body, counted on its way; undici reads it with back-pressure. */
function countedBody(req: IncomingMessage, state: CallState): Transform | null {
  if (!hasBody(req)) return null;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      state.bytesIn += chunk.length;
      done(null, chunk);
    },
  });
  req.on('error', (err) => body.destroy(err));
  req.pipe(body);
  return body;
}

/** The call's metrics and audit line, once its answer closed. */
function recordClosed(deps: ForwardDeps, call: AcceptedCall, state: CallState): void {
  const { res, target } = call;
  const { info } = target;
  const seconds = (deps.now() - state.started) / 1000;
  const sent = state.ending.wasSent;
  const completed = sent && res.writableFinished;
  const notice = state.cutBy ?? 'connection closed';
  deps.metrics.gatewayRequests.inc({ result: state.status > 0 && completed ? 'forwarded' : 'failed' });
  deps.metrics.gatewaySeconds.observe({ verb: info.verb }, seconds);
  deps.audit.record({
    action: 'gateway',
    requestId: call.requestId,
    ...grantFields(call.grant),
    verb: info.verb,
    path: target.pathname,
    namespace: info.namespace,
    resource: info.resource,
    name: info.name,
    subresource: info.subresource,
    status: state.status,
    // Only a call that went out has an event in the API server's log.
    ...(sent ? { apiAuditId: state.apiAuditId } : { notSent: notice }),
    latencyMs: Math.round(seconds * 1000),
    bytesIn: state.bytesIn,
    bytesOut: state.bytesOut,
    ...(sent && !completed ? { incomplete: notice } : {}),
  });
}

/**
 * The answer's way back. Back-pressure: the answer's data stops coming while the client cannot
 * take more (pause until 'drain'; no stream object on the answer's way).
 */
function answerHandler(deps: ForwardDeps, call: AcceptedCall, state: CallState): Dispatcher.DispatchHandler {
  const { res, grant } = call;
  return {
    onRequestStart(c) {
      state.controller = c;
      // The last moment to keep a call of an ended grant from the API server (expiry included,
      // which the sweep sees only within a second).
      if (state.abandoned || state.ending.grantHasEnded || !deps.table.live(grant.uid)) {
        state.abandoned = true;
        c.abort(new Error('the gateway ended the request'));
        return;
      }
      state.ending.markSent();
    },
    onResponseStart(_c, statusCode, upHeaders) {
      if (statusCode < 200) return; // informational (100 Continue): the final answer follows
      state.status = statusCode;
      const id = upHeaders['audit-id'];
      if (typeof id === 'string') state.apiAuditId = id;
      res.writeHead(statusCode, forwardedResponseHeaders(upHeaders));
      // A stream (a watch, a follow) sends its headers now, not with its first event, which may
      // be minutes away. A body of known length follows at once: its headers go out with it, in
      // one write (one TLS record, one syscall) instead of two.
      if (upHeaders['content-length'] === undefined) res.flushHeaders();
      state.ending.markAnswered();
    },
    onResponseData(c, chunk) {
      state.bytesOut += chunk.length;
      if (!res.write(chunk) && !c.paused) {
        c.pause();
        res.once('drain', () => c.resume());
      }
    },
    onResponseEnd() {
      state.upstreamComplete = true;
      res.end();
    },
    onResponseError(_c, err) {
      if (res.writableEnded) return;
      if (res.headersSent || state.cutBy || state.abandoned) {
        res.destroy();
        return;
      }
      deps.logger.warn('gateway could not reach the API server', {
        requestId: call.requestId,
        error: errorMessage(err),
      });
      state.status = 502;
      sendStatus(res, 502, 'the gateway could not reach the API server; retry');
    },
  };
}

/** When the grant ends before the call was sent: never sent, and the answer a later call would get. */
function endUnsent(call: AcceptedCall, state: CallState): void {
  if (state.ending.grantEnded() !== 'not-sent') return;
  state.cutBy = 'grant ended before it was sent';
  state.endUpstream();
  if (call.res.headersSent) call.res.destroy();
  else {
    state.status = TOKEN_REJECTED.status;
    call.res.shouldKeepAlive = false;
    sendStatus(call.res, TOKEN_REJECTED.status, TOKEN_REJECTED.message);
  }
}

export function forward(deps: ForwardDeps, call: AcceptedCall): void {
  const { req, res, target } = call;
  const longRunning = isLongRunning(target.info);
  const cut = (why: string) => {
    state.cutBy ??= why;
    deps.metrics.gatewayCutStreams.inc();
    state.endUpstream();
    res.destroy();
  };
  const state = new CallState(call.requestId, deps.now(), longRunning, cut);
  const untrack = deps.open.trackForwarded(call.grant.uid, {
    grantEnded: () => endUnsent(call, state),
    cut: () => cut('gateway stopped'),
  });
  deps.metrics.gatewayOpenStreams.inc();
  res.once('close', () => {
    deps.metrics.gatewayOpenStreams.dec();
    untrack();
    state.ending.done();
    // A complete answer's connection went back to the pool; anything else is ended here.
    state.endUpstream();
    recordClosed(deps, call, state);
  });
  res.on('error', () => state.endUpstream());
  const method = req.method ?? 'GET';
  deps.upstream.lanes[longRunning ? 'long' : 'short'].pool.dispatch(
    {
      method: method as Dispatcher.HttpMethod,
      path: `${deps.upstream.basePath}${target.pathname}${target.search}`,
      headers: upstreamHeaders(call),
      body: countedBody(req, state),
    },
    rewriteDiscovery(method, target.pathname, answerHandler(deps, call, state)),
  );
}
