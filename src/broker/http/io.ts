// Request and response plumbing: bounded JSON bodies, bearer tokens, and error answers that tell
// the client only the stable code and a generic message (the log says why).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorResponse } from '../../shared/api.js';
import { isCallerReason } from '../../shared/contract.js';
import { BrokerError, CLIENT_MESSAGE, HTTP_STATUS, RateLimitedError } from '../../shared/errors.js';
import { findDuplicateKey } from './strict-json.js';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  err: BrokerError,
  requestId: string,
  headers: Record<string, string> = {},
  /** explainRefusals: add the reason when it is one of CALLER_REASONS. */
  explain = false,
): void {
  const shared = explain && isCallerReason(err.reason);
  const body: ErrorResponse = {
    error: {
      code: err.code,
      message: CLIENT_MESSAGE[err.code],
      requestId,
      ...(shared ? { reason: err.reason } : {}),
      ...(shared && err.reason === 'ttl_exceeds_rule' && err.maxTtlSeconds !== undefined
        ? { maxTtlSeconds: err.maxTtlSeconds }
        : {}),
    },
  };
  const retryAfter =
    err instanceof RateLimitedError ? { 'retry-after': String(err.retryAfterSeconds) } : undefined;
  sendJson(res, HTTP_STATUS[err.code], body, { ...retryAfter, ...headers });
}

/** The bearer credential, or a BrokerError when there is none. */
export function bearerToken(req: IncomingMessage): string {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer ([^\s]+)$/i.exec(h.trim());
  if (!m?.[1]) throw new BrokerError('ERR_UNAUTHENTICATED', 'missing_bearer_token');
  return m[1];
}

export function requireJsonContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new BrokerError('ERR_BAD_REQUEST', 'unsupported_media_type');
}

/**
 * Reads at most `limit` bytes; more → 413 without reading the rest into memory. A key repeated in
 * one object is refused (400 invalid_request): the parsed value would silently keep the last one.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit)
    throw new BrokerError('ERR_PAYLOAD_TOO_LARGE', 'body_too_large', `content-length ${declared} > ${limit}`);
  // Event listeners rather than for-await: leaving a for-await loop destroys the socket, and the
  // client would never read our 413. Excess bytes are drained and dropped instead.
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new BrokerError('ERR_PAYLOAD_TOO_LARGE', 'body_too_large', `body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new BrokerError('ERR_BAD_REQUEST', 'invalid_json');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined)
    throw new BrokerError('ERR_BAD_REQUEST', 'invalid_request', `duplicate key ${JSON.stringify(duplicate)}`);
  return value;
}

/** Drains what is left of a request we answered early, so the connection can be reused. */
export function discardBody(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}
