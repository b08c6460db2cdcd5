// What a Kubernetes API request is, read from its method, path and query exactly the way the API
// server reads it (k8s.io/apiserver's RequestInfoFactory): the verb, namespace, resource, name and
// subresource. For audit lines, for refusing the streaming subresources and for telling
// long-running requests (watches, log streams) from short ones; the API server still decides what
// the request may do.
import { goQueryBool } from './go-query.js';

export interface KubeRequestInfo {
  /** get, list, watch, create, update, patch, delete, deletecollection, proxy; or the lower-case method. */
  verb: string;
  namespace?: string;
  resource?: string;
  name?: string;
  subresource?: string;
}

const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};
/** Verbs named by a path prefix (/api/v1/watch/..., /api/v1/proxy/...). */
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
/** namespaces/<ns>/<these> is the namespace's own subresource, not a resource inside it. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

export function describeKubeRequest(method: string, pathname: string, search: string): KubeRequestInfo {
  const nonResource: KubeRequestInfo = { verb: method.toLowerCase() };
  // splitPath: leading and trailing slashes do not count ("…/exec/" is the exec subresource).
  const trimmed = pathname.replace(/^\/+|\/+$/g, '');
  const parts = trimmed === '' ? [] : trimmed.split('/');
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return nonResource;
  // /api/<version>/... or /apis/<group>/<version>/...
  let rest = parts.slice(1);
  if (parts[0] === 'apis') {
    if (rest.length < 3) return nonResource;
    rest = rest.slice(1);
  }
  rest = rest.slice(1);

  let verb: string;
  if (SPECIAL_VERBS.has(rest[0]!)) {
    verb = rest[0]!;
    // The API server refuses a bare /watch or /proxy; the verb is still what it was asked.
    if (rest.length < 2) return { verb };
    rest = rest.slice(1);
  } else verb = METHOD_VERBS[method] ?? '';

  const info: KubeRequestInfo = { verb };
  if (rest[0] === 'namespaces' && rest.length > 1) {
    info.namespace = rest[1];
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
  }
  // resource/name/subresource/...; the proxy verb has no subresource.
  if (rest.length >= 3 && verb !== 'proxy') info.subresource = rest[2];
  if (rest.length >= 2) info.name = rest[1];
  if (rest.length >= 1) info.resource = rest[0];

  if (info.name === undefined && verb === 'get') info.verb = goQueryBool(search, 'watch') ? 'watch' : 'list';
  if (info.name === undefined && verb === 'delete') info.verb = 'deletecollection';
  return info;
}

/**
 * Whether the API server runs this request as long-running (its LongRunningRequestCheck: the
 * watch and proxy verbs, the attach, exec, proxy, log and portforward subresources): such a
 * request may hold its connection for as long as it likes.
 */
export function isLongRunning(info: KubeRequestInfo): boolean {
  return (
    info.verb === 'watch' ||
    info.verb === 'proxy' ||
    ['attach', 'exec', 'proxy', 'log', 'portforward'].includes(info.subresource ?? '')
  );
}
