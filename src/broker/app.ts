// The broker application: the public routes behind one request handler, and metrics behind
// another for the internal listener (a NetworkPolicy filters ports, not paths). Both answer health
// and readiness. Built from its dependencies (deps.ts) and independent of listening, so tests can
// drive the handlers directly or through a server; runtime.ts wires them to real ones.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { EXCHANGE_PATH, GRANTS_PATH } from '../shared/api.js';
import { BrokerError, errorMessage } from '../shared/errors.js';
import type { BrokerDeps } from './deps.js';
import { asBrokerError } from './http/answer.js';
import { discardBody, sendError, sendJson } from './http/io.js';
import { createExchangeRoute } from './http/exchange.js';
import { createRenewRoute } from './http/renew.js';
import { createRevokeRoute } from './http/revoke.js';

export interface BrokerApp {
  /** The public listener: exchange, renew, revoke, health, readiness. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The internal listener: metrics, health, readiness. */
  handleInternal(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** From now on /readyz fails, so load balancers stop sending new work. */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
}

const GRANT_PATH = new RegExp(`^${GRANTS_PATH}/([^/]+)$`);
const RENEW_PATH = new RegExp(`^${GRANTS_PATH}/([^/]+)/renew$`);

/** A malformed escape (`%`, `%zz`, `%ff`) is not a grant id (404 later), not a crash (500). */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function createBrokerApp(deps: BrokerDeps): BrokerApp {
  const exchange = createExchangeRoute(deps);
  const revoke = createRevokeRoute(deps);
  const renew = createRenewRoute(deps);
  let shuttingDown = false;

  /** Health and readiness, on both listeners; true when it answered. */
  const probe = (path: string, method: string, res: ServerResponse): boolean => {
    if (method !== 'GET') return false;
    if (path === '/healthz') sendJson(res, 200, { status: 'ok' });
    else if (path === '/readyz')
      sendJson(res, shuttingDown ? 503 : 200, { status: shuttingDown ? 'shutting down' : 'ok' });
    else return false;
    return true;
  };

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
        if (probe(path, method, res)) return;
        if (path === EXCHANGE_PATH && method === 'POST') return await exchange(req, res, requestId);
        const m = GRANT_PATH.exec(path);
        if (m && method === 'DELETE') return await revoke(req, res, requestId, decodePathSegment(m[1]!));
        const r = RENEW_PATH.exec(path);
        if (r && method === 'POST') return await renew(req, res, requestId, decodePathSegment(r[1]!));
        discardBody(req);
        sendError(res, new BrokerError('ERR_NOT_FOUND', 'no_such_route'), requestId);
      } catch (e) {
        deps.logger.error('request failed', { requestId, error: errorMessage(e) });
        if (!res.headersSent) sendError(res, asBrokerError(e), requestId);
        else res.destroy();
      }
    },
    async handleInternal(req, res) {
      const path = new URL(req.url ?? '/', 'http://broker').pathname;
      const method = req.method ?? 'GET';
      discardBody(req);
      if (probe(path, method, res)) return;
      if (path === '/metrics' && method === 'GET') {
        try {
          const text = await deps.metrics.registry.metrics();
          res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
          res.end(text);
        } catch (e) {
          deps.logger.error('metrics failed', { error: errorMessage(e) });
          sendError(res, asBrokerError(e), randomUUID());
        }
        return;
      }
      sendError(res, new BrokerError('ERR_NOT_FOUND', 'no_such_route'), randomUUID());
    },
  };
}
