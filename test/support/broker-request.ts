// One HTTP(S) request to a broker, with its answer parsed for assertions.
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface BrokerResponse<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  body: T;
  text: string;
}

export interface BrokerRequestOptions {
  token?: string;
  body?: unknown;
  /** Raw body bytes instead of JSON. */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

/** One HTTP(S) request to the broker (node:http, so a test CA can be trusted without global state). */
export function brokerRequest<T = unknown>(
  baseUrl: string,
  method: string,
  path: string,
  o: BrokerRequestOptions = {},
  ca?: Buffer,
): Promise<BrokerResponse<T>> {
  const url = new URL(path, baseUrl);
  const payload = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    if (headers['transfer-encoding'] !== 'chunked')
      headers['content-length'] ??= String(Buffer.byteLength(payload));
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolveP, reject) => {
    const req = send(url, { method, headers, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON (e.g. /metrics) */
        }
        resolveP({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
