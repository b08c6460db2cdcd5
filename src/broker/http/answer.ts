// How every route answers and records one request: the work's audit line and a 200, or, for a
// refusal, the denial's audit line, a log line with the detail, and the generic error answer.
// Routes call this once, so each route's audit and metrics sit in the route, in one place.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BrokerError, errorMessage } from '../../shared/errors.js';
import type { AuditEvent } from '../audit.js';
import type { BrokerDeps } from '../deps.js';
import { describeK8sError } from '../kube/errors.js';
import { discardBody, sendError, sendJson } from './io.js';

/** What a denial's audit line says besides the reason: as much as was known when it was refused. */
export type DenialDetails = Omit<AuditEvent, 'action' | 'requestId' | 'reason' | 'code'>;

export type Outcome =
  | { result: 'done' }
  /** Refused: the request was not acceptable. Failed: our side (or the cluster) could not serve it. */
  | { result: 'refused' | 'failed'; error: BrokerError };

/** A failure on our side (or the cluster's), as opposed to a refused request. */
const isServerFault = (err: BrokerError): boolean =>
  err.code === 'ERR_INTERNAL' || err.code === 'ERR_UNAVAILABLE';

export function asBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  return new BrokerError('ERR_INTERNAL', 'unexpected_error', errorMessage(err), { cause: err });
}

export async function answer(
  deps: Pick<BrokerDeps, 'audit' | 'logger' | 'explainRefusals'>,
  call: { req: IncomingMessage; res: ServerResponse; requestId: string },
  route: {
    /** For the log line: "exchange refused", "revocation refused". */
    name: string;
    work: () => Promise<{ body: unknown; audit: AuditEvent }>;
    denial: () => DenialDetails;
  },
): Promise<Outcome> {
  const { req, res, requestId } = call;
  const headers = { 'x-request-id': requestId };
  try {
    const { body, audit } = await route.work();
    deps.audit.record(audit);
    sendJson(res, 200, body, headers);
    return { result: 'done' };
  } catch (e) {
    const err = asBrokerError(e);
    const fault = isServerFault(err);
    deps.audit.record({ action: 'denial', requestId, reason: err.reason, code: err.code, ...route.denial() });
    deps.logger[fault ? 'error' : 'info'](`${route.name} refused`, {
      requestId,
      code: err.code,
      reason: err.reason,
      detail: err.message,
      // Causes are often Kubernetes client errors, whose messages carry whole response bodies.
      cause: err.cause === undefined ? undefined : describeK8sError(err.cause),
    });
    discardBody(req);
    sendError(res, err, requestId, headers, deps.explainRefusals);
    return { result: fault ? 'failed' : 'refused', error: err };
  }
}
