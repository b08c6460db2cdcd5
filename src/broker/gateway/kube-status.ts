// The gateway's refusals as the Kubernetes API answers errors (a v1 Status), so kubectl and
// client-go print the message instead of a decoding error.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const REASON_BY_CODE: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  502: 'ServiceUnavailable',
  503: 'ServiceUnavailable',
};

export function statusBody(code: number, message: string): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASON_BY_CODE[code] ?? 'InternalError',
    code,
  });
}

export function sendStatus(res: ServerResponse, code: number, message: string): void {
  const body = statusBody(code, message);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
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
