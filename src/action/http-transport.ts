// A minimal HTTP(S) client on node:http/node:https. Why not fetch: Node's built-in fetch cannot be
// told to trust an extra CA without importing undici's Agent (hundreds of KiB in the main bundle),
// and the broker is often served with a private CA (the `broker-ca` input). node:https takes `ca`
// directly. Responses are bounded in size, and errors never carry headers or bodies we sent.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

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
  /** The public roots; tests substitute their own. Default: node's bundled roots. */
  publicRoots?: readonly string[];
}

/** Verification failures that another trust set could fix (not, e.g., a host name mismatch). */
const UNTRUSTED_CHAIN = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

export function createNodeTransport(options: TransportOptions = {}): HttpTransport {
  const { ca } = options;
  if (!ca) return (req) => send(req, undefined);
  // Trust = public roots + the extra CA, so a publicly-signed broker keeps working when a CA is
  // also given (e.g. during a certificate migration). Building a context from all ~140 roots costs
  // 50-100 ms per context (measured in bench/), and node:https built one per request; so first try
  // a context with the extra CA alone (built once), and only if the broker's chain does not verify
  // against it, the full set (built once). Any chain accepted either way verifies against roots + CA.
  // An agent of its own: node's agents pool sockets by host and TLS options but not by
  // secureContext, so a shared pool could hand this transport a socket verified under another trust set.
  const agent = new HttpsAgent({ keepAlive: true });
  let narrow: SecureContext | undefined;
  let full: SecureContext | undefined;
  let needFull = false;
  const fullContext = () =>
    (full ??= createSecureContext({ ca: [...(options.publicRoots ?? rootCertificates), ca] }));
  return async (req) => {
    if (req.url.protocol !== 'https:') return send(req, undefined);
    if (!needFull) {
      try {
        return await send(req, { agent, secureContext: (narrow ??= createSecureContext({ ca })) });
      } catch (err) {
        const code = ((err as { cause?: { code?: unknown } }).cause?.code ?? '') as string;
        if (!UNTRUSTED_CHAIN.has(code)) throw err;
        needFull = true;
      }
    }
    return send(req, { agent, secureContext: fullContext() });
  };
}

function send(
  req: HttpRequest,
  tls: { agent: HttpsAgent; secureContext: SecureContext } | undefined,
): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    const isHttps = req.url.protocol === 'https:';
    const open = isHttps ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    const outgoing = open(req.url, { method: req.method, headers, ...(isHttps && tls ? tls : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          res.destroy(new NetworkError(`response from ${req.url.host} exceeds ${MAX_RESPONSE_BYTES} bytes`));
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
    });
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
