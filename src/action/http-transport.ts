// A minimal HTTP(S) client on node:http/node:https. Why not fetch: Node's built-in fetch cannot be
// told to trust an extra CA without importing undici's Agent (hundreds of KiB in the main bundle),
// and the broker is often served with a private CA (the `broker-ca` input). node:https takes `ca`
// directly. Responses are bounded in size, and errors never carry headers or bodies we sent.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

/** The request never got an HTTP answer (DNS, refused, reset, TLS, timeout): always worth a retry. */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetworkError';
  }
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface TransportOptions {
  /** Extra PEM CA certificate(s) to trust for https, in addition to the public roots. */
  ca?: string;
}

export function createNodeTransport(options: TransportOptions = {}): HttpTransport {
  // Adding to the public roots (not replacing them) keeps a publicly-signed broker working when a
  // CA is also given, e.g. during a certificate migration.
  const ca = options.ca ? [...rootCertificates, options.ca] : undefined;

  return (req) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const isHttps = req.url.protocol === 'https:';
      const send = isHttps ? httpsRequest : httpRequest;
      const headers: Record<string, string> = { ...req.headers };
      if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
      const outgoing = send(
        req.url,
        { method: req.method, headers, ...(isHttps && ca ? { ca } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy(
                new NetworkError(`response from ${req.url.host} exceeds ${MAX_RESPONSE_BYTES} bytes`),
              );
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => reject(asNetworkError(err, req.url)));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      outgoing.setTimeout(req.timeoutMs, () =>
        outgoing.destroy(new NetworkError(`no answer from ${req.url.host} within ${req.timeoutMs} ms`)),
      );
      outgoing.on('error', (err) => reject(asNetworkError(err, req.url)));
      outgoing.end(req.body);
    });
}

function asNetworkError(err: Error, url: URL): NetworkError {
  if (err instanceof NetworkError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new NetworkError(`cannot reach ${url.host}: ${code ? `${code} ` : ''}${err.message}`, {
    cause: err,
  });
}
