// Requests to a broker's gateway as a Kubernetes client makes them, and raw ones as an attacker
// writes them (bytes on a TLS socket, so the request can be malformed on purpose).
import { request as httpsRequest, type Agent } from 'node:https';
import { connect } from 'node:tls';

export interface GatewayAnswer {
  status: number;
  body: string;
  /** The Status message when the answer is a Kubernetes Status. */
  message?: string;
}

export function gatewayRequest(
  baseUrl: string,
  ca: Buffer,
  method: string,
  path: string,
  o: { token?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent } = {},
): Promise<GatewayAnswer> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers['content-type'] ??= 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { hostname: url.hostname, port: url.port, method, path, headers, ca, agent: o.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(answerOf(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Writes `raw` (CRLFs included) on a fresh TLS connection and reads until the server closes. */
export function rawGatewayRequest(baseUrl: string, ca: Buffer, raw: string): Promise<GatewayAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ca, servername: undefined }, () =>
      socket.write(raw),
    );
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // One answer is enough; the server may keep the connection open for more.
      const text = Buffer.concat(chunks).toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
      if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve(answerOf(status, text.slice(text.indexOf('\r\n\r\n') + 4)));
    });
    socket.on('error', reject);
  });
}

function answerOf(status: number, body: string): GatewayAnswer {
  let message: string | undefined;
  try {
    const parsed = JSON.parse(body) as { kind?: string; message?: string };
    if (parsed.kind === 'Status') message = parsed.message;
  } catch {
    /* not JSON */
  }
  return { status, body, message };
}
