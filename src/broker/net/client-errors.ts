// What the HTTP parser refuses before any route runs. Node answers a header block over its limit
// (16 KiB: a bearer token longer than that, say) with 431 and no body, while the contract answers a
// malformed request with 400 and the JSON error body (docs/api.md); that one is answered here. Every
// other parser error gets the answer Node itself would give.
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorResponse } from '../../shared/api.js';
import { CLIENT_MESSAGE } from '../../shared/errors.js';

const body = JSON.stringify({
  error: { code: 'ERR_BAD_REQUEST', message: CLIENT_MESSAGE.ERR_BAD_REQUEST },
} satisfies ErrorResponse);
const HEADERS_TOO_LARGE =
  'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\n' +
  `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`;

// Node's own answers (lib/_http_server.js), which a 'clientError' listener replaces wholesale.
const NODE_ANSWER: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
};
const plain = (status: string) => `HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`;

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node does: answer only when no response has begun on this connection, or the peer would
    // read our bytes in the middle of another answer. (The response in flight is Node's own field.)
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const code = err.code ?? '';
      socket.write(
        code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : plain(NODE_ANSWER[code] ?? '400 Bad Request'),
      );
    }
    socket.destroy(err);
  });
}
