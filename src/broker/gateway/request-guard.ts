// What the gateway accepts before it even looks at the token, and what it passes on. Strict on
// purpose: a request the API server might read differently from us (an absolute-form target, dot
// or encoded path segments, a second Authorization header) is refused, never rewritten. Node's
// parser already refuses Content-Length together with Transfer-Encoding, and we never forward Host.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Reason } from '../../shared/contract.js';
import { describeKubeRequest, type KubeRequestInfo } from './kube-request.js';

export interface Refusal {
  status: 400 | 401 | 403 | 404 | 429 | 503;
  reason: Reason;
  /** Sent to the client in the Kubernetes Status body: says what to change, nothing secret. */
  message: string;
  /** Sent as Retry-After (and in the Status details): when the same call may succeed. */
  retryAfterSeconds?: number;
}

export interface AcceptedTarget {
  pathname: string;
  /** With its leading "?", or empty. */
  search: string;
  /** The request as the API server will read it (verb, resource, subresource...). */
  info: KubeRequestInfo;
}

const MAX_TARGET_LENGTH = 8_192;
/** Path characters Kubernetes names and API paths use; "%" is not one (no encoded segments). */
const PATH = /^\/[A-Za-z0-9\-._~:@!$&'()*+,;=/]*$/;
/** Printable ASCII without space, "#" and backslash. */
const QUERY = /^[\x21\x22\x24-\x5b\x5d-\x7e]*$/;
/** The API surface a grant may reach through the gateway; nothing else of the API server. */
const API_PATH = /^\/(api|apis|version|openapi\/v2|openapi\/v3)(\/.*)?$/;
/** Subresources that only work over an upgraded connection. */
const STREAMING_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

export const UPGRADE_MESSAGE =
  'the k8s-ephemeral-access gateway does not allow exec, attach, port-forward or cp (connection upgrades)';
export const PROXY_MESSAGE =
  "the k8s-ephemeral-access gateway does not allow the API server's proxy (pods/proxy, services/proxy, nodes/proxy)";

/** The request target split into path and query, or why it is refused. */
export function checkTarget(method: string, url: string): AcceptedTarget | Refusal {
  const bad = (message: string): Refusal => ({ status: 400, reason: 'path_refused', message });
  if (!url.startsWith('/') || url.startsWith('//'))
    return bad('the request target must be a path (origin-form)');
  if (url.length > MAX_TARGET_LENGTH) return bad('the request target is too long');
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const search = q < 0 ? '' : url.slice(q);
  if (!PATH.test(pathname)) return bad('the path has characters an API path never has (or is encoded)');
  if (!QUERY.test(search.slice(1))) return bad('the query has characters a query never has');
  const segments = pathname.split('/').slice(1);
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1)))
    return bad('the path has empty, "." or ".." segments');
  if (!API_PATH.test(pathname))
    return {
      status: 404,
      reason: 'path_refused',
      message: 'the gateway serves the Kubernetes API paths only',
    };
  if (!['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method))
    return bad(`the method ${method} is not one the Kubernetes API uses`);
  // By the subresource the API server will parse, not by the path's spelling ("…/exec/" is exec).
  const info = describeKubeRequest(method, pathname, search);
  if (STREAMING_SUBRESOURCES.has(info.subresource ?? ''))
    return { status: 403, reason: 'upgrade_refused', message: UPGRADE_MESSAGE };
  // The proxy reaches pods, services and kubelets behind the API server, past the gateway's view.
  if (info.verb === 'proxy' || info.subresource === 'proxy')
    return { status: 403, reason: 'proxy_refused', message: PROXY_MESSAGE };
  return { pathname, search, info };
}

/** host, host:port, [v6]:port; no user info, path or second value. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Headers that change who the API server thinks is asking, or what the connection becomes, and a
 * Host that is not one host: we never route by Host, but a request that names two targets is
 * refused rather than read one way here and another way behind us.
 */
export function checkHeaders(
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
): Refusal | undefined {
  const hosts = rawHeaders.filter((_, i) => i % 2 === 0 && rawHeaders[i]!.toLowerCase() === 'host');
  if (hosts.length !== 1 || !HOST.test(headers.host ?? ''))
    return {
      status: 400,
      reason: 'header_refused',
      message: 'the request needs exactly one Host header naming one host',
    };
  if (headers.upgrade !== undefined || /\bupgrade\b/i.test(String(headers.connection ?? '')))
    return { status: 403, reason: 'upgrade_refused', message: UPGRADE_MESSAGE };
  for (const name of Object.keys(headers)) {
    if (name.startsWith('impersonate-'))
      return {
        status: 403,
        reason: 'header_refused',
        message: 'the gateway does not allow impersonation: a grant acts as itself',
      };
  }
  return undefined;
}

/** The one bearer token of the request; anything else (none, two, another scheme) is refused. */
export function bearerTokenOf(rawHeaders: readonly string[]): string | Refusal {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i]!.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1]!);
  const m = values.length === 1 ? /^Bearer ([\x21-\x7e]{1,16384})$/.exec(values[0]!.trim()) : null;
  if (!m)
    return {
      status: 401,
      reason: 'missing_bearer_token',
      message: 'the gateway needs exactly one "Authorization: Bearer" header with a grant token',
    };
  return m[1]!;
}

/**
 * The request headers passed on to the API server, chosen from a list: a credential, cookie,
 * impersonation, X-Remote-* or forwarding header never travels, whatever its name or casing.
 */
const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'content-encoding',
  'content-length',
  'content-type',
  'if-match',
  'if-none-match',
  'kubectl-command',
  'kubectl-session',
  'user-agent',
] as const;

export function forwardedRequestHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  // A chunked body stays chunked (Node frames it); Content-Length is passed as given.
  if (headers['transfer-encoding'] !== undefined && headers['content-length'] === undefined)
    out['transfer-encoding'] = 'chunked';
  return out;
}

/** Hop-by-hop response headers (RFC 9110 7.6.1): Node sets its own framing towards the client. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'set-cookie',
]);

export function forwardedResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}
