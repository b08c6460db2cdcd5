// What a Kubernetes API request is, read from its method and path the way the API server reads it
// (its RequestInfo): the verb, namespace, resource, name and subresource. For audit lines and for
// refusing the streaming subresources; the API server still decides what the request may do.

export interface KubeRequestInfo {
  /** get, list, watch, create, update, patch, delete, deletecollection; or the lower-case method. */
  verb: string;
  namespace?: string;
  resource?: string;
  name?: string;
  subresource?: string;
}

const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
};

export function describeKubeRequest(method: string, pathname: string, search: string): KubeRequestInfo {
  const parts = pathname.split('/').filter((p) => p !== '');
  const query = new URLSearchParams(search);
  const watchParam = ['true', '1'].includes(query.get('watch') ?? '');
  // /api/v1/... or /apis/<group>/<version>/...
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) rest = parts.slice(2);
  else if (parts[0] === 'apis' && parts.length >= 3) rest = parts.slice(3);
  else return { verb: method.toLowerCase() };

  let watchPrefix = false;
  if (rest[0] === 'watch') {
    watchPrefix = true;
    rest = rest.slice(1);
  }
  const info: KubeRequestInfo = { verb: method.toLowerCase() };
  // namespaces/<ns> alone is the namespace object itself; namespaces/<ns>/<resource>/... is inside it.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    info.namespace = rest[1];
    rest = rest.slice(2);
  } else if (rest[0] === 'namespaces' && rest.length === 2) {
    info.namespace = rest[1];
  }
  [info.resource, info.name, info.subresource] = rest;
  const collection = info.name === undefined;

  if (watchPrefix || (method === 'GET' && watchParam)) info.verb = 'watch';
  else if (method === 'GET' || method === 'HEAD') info.verb = collection ? 'list' : 'get';
  else if (method === 'DELETE') info.verb = collection ? 'deletecollection' : 'delete';
  else info.verb = METHOD_VERBS[method] ?? method.toLowerCase();
  return info;
}
