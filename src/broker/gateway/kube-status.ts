// The gateway's refusals as the Kubernetes API answers errors (a v1 Status), so kubectl and
// client-go print the message instead of a decoding error.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const REASON_BY_CODE: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  429: 'TooManyRequests',
  502: 'ServiceUnavailable',
  503: 'ServiceUnavailable',
};

export function statusBody(code: number, message: string, retryAfterSeconds?: number): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASON_BY_CODE[code] ?? 'InternalError',
    ...(retryAfterSeconds === undefined ? {} : { details: { retryAfterSeconds } }),
    code,
  });
}

/** With `retryAfterSeconds`, also Retry-After, which client-go honours by waiting and retrying. */
export function sendStatus(
  res: ServerResponse,
  code: number,
  message: string,
  retryAfterSeconds?: number,
): void {
  const body = statusBody(code, message, retryAfterSeconds);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...(retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) }),
  });
  res.end(body);
}

/** On a connection the client asked to upgrade: a whole HTTP/1.1 answer, then the socket closes. */
export function writeStatusToSocket(socket: Duplex, code: number, message: string): void {
  const body = statusBody(code, message);
  socket.end(
    `HTTP/1.1 ${code} ${REASON_BY_CODE[code] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
      body,
  );
}
