// Discovery answers through the gateway, without the API server's address. `GET /api` and the
// unaggregated `GET /apis` list `serverAddressByClientCIDRs` (the address clients should use,
// which in gateway mode is the one thing a job must not learn; `/apis/<group>` may carry it too).
// For those paths the gateway asks for JSON only, uncompressed, reads the whole answer (bounded),
// removes that field wherever it occurs, and sends the rest with its new length. Every other
// answer streams through untouched.
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** The field that names the API server's address, wherever it appears in a discovery document. */
export const SERVER_ADDRESS_FIELD = 'serverAddressByClientCIDRs';
/** A discovery answer larger than this is refused rather than passed on unread. */
export const DISCOVERY_MAX_BYTES = 16 * 1024 * 1024;

/** `/api`, `/apis`, `/apis/<group>` (a trailing slash allowed). Never a resource path. */
const DISCOVERY_PATH = /^\/(?:api|apis(?:\/[^/]+)?)\/?$/;

export function isDiscoveryRequest(method: string, pathname: string): boolean {
  // HEAD has no body to rewrite.
  return method === 'GET' && DISCOVERY_PATH.test(pathname);
}

/** Media types the rewrite can read: JSON (aggregated discovery's JSON included) and wildcards. */
const READABLE = new Set(['application/json', 'application/*', '*/*']);

/**
 * The request headers for a discovery path: the Accept entries that ask for JSON (protobuf ones
 * dropped; JSON when none is left), and no Accept-Encoding, so the answer comes uncompressed.
 */
export function discoveryRequestHeaders(
  method: string,
  pathname: string,
  headers: Record<string, string | string[]>,
): Record<string, string | string[]> {
  if (!isDiscoveryRequest(method, pathname)) return headers;
  const rest = { ...headers };
  const accept = rest.accept;
  delete rest['accept-encoding'];
  const entries = [accept ?? []]
    .flat()
    .join(',')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => READABLE.has(e.split(';')[0]!.trim().toLowerCase()));
  return { ...rest, accept: entries.length > 0 ? entries.join(',') : 'application/json' };
}

/** Removes the field from every object of a parsed JSON document, in place. */
function strip(value: unknown): void {
  if (Array.isArray(value)) for (const item of value) strip(item);
  else if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    delete object[SERVER_ADDRESS_FIELD];
    for (const item of Object.values(object)) strip(item);
  }
}

/** The answer's body without the field; undefined when it names the field but cannot be read. */
export function withoutServerAddresses(body: Buffer): Buffer | undefined {
  const text = body.toString('utf8');
  if (!text.includes(SERVER_ADDRESS_FIELD)) return body;
  try {
    const document: unknown = JSON.parse(text);
    strip(document);
    return Buffer.from(JSON.stringify(document));
  } catch {
    return undefined;
  }
}

/**
 * For a discovery path, a handler that reads the whole answer and hands `inner` the rewritten one
 * (status, headers with the new length, one chunk, end); otherwise `inner` itself.
 */
export function rewriteDiscovery(
  method: string,
  pathname: string,
  inner: Dispatcher.DispatchHandler,
): Dispatcher.DispatchHandler {
  if (!isDiscoveryRequest(method, pathname)) return inner;
  let status = 0;
  let headers: IncomingHttpHeaders = {};
  let message: string | undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  return {
    onRequestStart: (c, context) => inner.onRequestStart?.(c, context),
    onResponseStart(c, statusCode, upHeaders, statusMessage) {
      if (statusCode < 200) return inner.onResponseStart?.(c, statusCode, upHeaders, statusMessage);
      [status, headers, message] = [statusCode, upHeaders, statusMessage];
    },
    onResponseData(c, chunk) {
      if (failed) return;
      size += chunk.length;
      if (size > DISCOVERY_MAX_BYTES) {
        failed = true;
        c.abort(new Error('the discovery answer is too large to rewrite'));
        return;
      }
      chunks.push(chunk);
    },
    onResponseEnd(_upstream, trailers) {
      if (failed) return;
      // The answer is complete: back-pressure from here on must not pause or resume the pooled
      // connection, which may already carry another request.
      const c: Dispatcher.DispatchController = {
        aborted: false,
        paused: false,
        reason: null,
        abort: () => undefined,
        pause: () => undefined,
        resume: () => undefined,
      };
      const body = headers['content-encoding'] ? undefined : withoutServerAddresses(Buffer.concat(chunks));
      if (!body) {
        inner.onResponseError?.(c, new Error('a discovery answer the gateway cannot rewrite'));
        return;
      }
      inner.onResponseStart?.(c, status, { ...headers, 'content-length': String(body.length) }, message);
      if (body.length > 0) inner.onResponseData?.(c, body);
      inner.onResponseEnd?.(c, trailers);
    },
    onResponseError: (c, err) => inner.onResponseError?.(c, err),
  };
}
