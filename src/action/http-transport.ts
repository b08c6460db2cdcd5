// A minimal HTTP(S) client on node:http/node:https. Why not fetch: Node's built-in fetch cannot be
// told to trust an extra CA without importing undici's Agent (hundreds of KiB in the main bundle),
// and the broker is often served with a private CA (the `broker-ca` input). node:https takes `ca`
// directly. Responses are bounded in size, and errors never carry headers or bodies we sent.
// Behind a forward proxy (proxy.ts) an https request goes through a CONNECT tunnel, and TLS to the
// target runs inside it with the same trust and host-name check as a direct connection.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { NetworkError, type HttpRequest, type HttpResponse, type HttpTransport } from './http-types.js';
import type { Env } from './inputs.js';
import { proxyFor, type ProxyEndpoint } from './proxy.js';

export { NetworkError, type HttpRequest, type HttpResponse, type HttpTransport } from './http-types.js';

const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface TransportOptions {
  /** Extra PEM CA certificate(s) to trust for https, in addition to the public roots. */
  ca?: string;
  /** The public roots; tests substitute their own. Default: node's bundled roots. */
  publicRoots?: readonly string[];
  /** Where to read the proxy variables (https_proxy, no_proxy); default: none, always direct. */
  proxyEnv?: Env;
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
  const route = (url: URL) => (options.proxyEnv ? proxyFor(url, options.proxyEnv) : undefined);
  if (!ca) return (req) => send(req, undefined, route(req.url));
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
    if (req.url.protocol !== 'https:') return send(req, undefined, undefined);
    const proxy = route(req.url);
    if (!needFull) {
      try {
        return await send(req, { agent, secureContext: (narrow ??= createSecureContext({ ca })) }, proxy);
      } catch (err) {
        const code = ((err as { cause?: { code?: unknown } }).cause?.code ?? '') as string;
        if (!UNTRUSTED_CHAIN.has(code)) throw err;
        needFull = true;
      }
    }
    return send(req, { agent, secureContext: fullContext() }, proxy);
  };
}

function send(
  req: HttpRequest,
  tls: { agent: HttpsAgent; secureContext: SecureContext } | undefined,
  proxy: ProxyEndpoint | undefined,
): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    const isHttps = req.url.protocol === 'https:';
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    const onResponse = (res: IncomingMessage) => {
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
    };
    const outgoing =
      isHttps && proxy
        ? // No agent: each tunnel carries one request (the action makes a handful).
          httpRequest(
            {
              // The target's coordinates: node's http client refuses an https: URL itself.
              host: req.url.hostname.replace(/^\[(.*)\]$/, '$1'),
              port: req.url.port || 443,
              path: `${req.url.pathname}${req.url.search}`,
              method: req.method,
              headers: { host: req.url.host, ...headers },
              createConnection: (_opts, done) =>
                openTunnel(proxy, req.url, tls?.secureContext, req.timeoutMs, done),
            },
            onResponse,
          )
        : (isHttps ? httpsRequest : httpRequest)(
            req.url,
            { method: req.method, headers, ...(isHttps && tls ? tls : {}) },
            onResponse,
          );
    outgoing.setTimeout(req.timeoutMs, () =>
      outgoing.destroy(new NetworkError(`no answer from ${req.url.host} within ${req.timeoutMs} ms`)),
    );
    outgoing.on('error', (err) => reject(asNetworkError(err, req.url)));
    outgoing.end(req.body);
  });
}

/**
 * CONNECT through the proxy to the target's host and port, then TLS to the target inside the
 * tunnel: the proxy sees only the host name and port, never the request or the credentials in it.
 */
function openTunnel(
  proxy: ProxyEndpoint,
  target: URL,
  secureContext: SecureContext | undefined,
  timeoutMs: number,
  done: (err: Error | null, socket: Duplex) => void,
): undefined {
  const hostname = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const authority = `${target.hostname}:${target.port || 443}`;
  const via = `proxy ${proxy.display}`;
  const connect = httpRequest({
    host: proxy.hostname,
    port: proxy.port,
    method: 'CONNECT',
    path: authority,
    headers: {
      host: authority,
      ...(proxy.authorization ? { 'proxy-authorization': proxy.authorization } : {}),
    },
    agent: false,
  });
  let settled = false;
  const finish = (err: Error | null, socket?: Duplex) => {
    if (settled) return;
    settled = true;
    // On an error node's request ignores the socket argument.
    done(err, socket as Duplex);
  };
  connect.setTimeout(timeoutMs, () =>
    connect.destroy(new NetworkError(`no answer from ${via} within ${timeoutMs} ms`)),
  );
  connect.on('error', (err: NodeJS.ErrnoException) =>
    finish(
      err instanceof NetworkError
        ? err
        : new NetworkError(`cannot reach ${via}: ${err.code ? `${err.code} ` : ''}${err.message}`, {
            cause: err,
          }),
    ),
  );
  connect.on('connect', (res, socket) => {
    connect.setTimeout(0);
    if (res.statusCode !== 200) {
      socket.destroy();
      finish(new NetworkError(`${via} refused the tunnel to ${authority}: HTTP ${res.statusCode}`));
      return;
    }
    finish(
      null,
      tlsConnect({
        socket,
        host: hostname,
        // SNI takes names only; the certificate is still checked against an IP-literal host.
        ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
        ...(secureContext ? { secureContext } : {}),
      }),
    );
  });
  connect.end();
  return undefined;
}

function asNetworkError(err: Error, url: URL): NetworkError {
  if (err instanceof NetworkError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new NetworkError(`cannot reach ${url.host}: ${code ? `${code} ` : ''}${err.message}`, {
    cause: err,
  });
}
