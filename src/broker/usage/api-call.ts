// One Kubernetes API call a grant made, as the usage report and `policy advise` read it: the
// RBAC-relevant attributes and the status, never a body or a credential. Read from the gateway's
// audit line (its path gives the API group) or from an API server audit event.
import type { RbacRequest } from '../rbac/evaluate.js';

export interface ApiCall {
  verb: string;
  /** '' for the core group. */
  apiGroup: string;
  /** Absent for a non-resource URL (/version, /healthz). */
  resource?: string;
  subresource?: string;
  /** Absent for a cluster-scoped request. */
  namespace?: string;
  name?: string;
  status: number;
}

/**
 * What a call's status says of RBAC: 403 is a refusal (RBAC's, or an admission plugin's, which
 * answers 403 too); any other answer of the API server past authentication means RBAC allowed it
 * (a 404 or 409 is decided after authorization). 401 and 429 come before authorization, and a 5xx
 * or a call that got no status tells nothing.
 */
export type CallOutcome = 'allowed' | 'refused' | 'unknown';

export function outcomeOf(status: number): CallOutcome {
  if (status === 403) return 'refused';
  // 101: an exec or attach whose connection was upgraded, so authorized.
  if (status === 101 || (status >= 200 && status < 500 && status !== 401 && status !== 429)) return 'allowed';
  return 'unknown';
}

/** The API group of a resource path: '' under /api, the group under /apis; undefined otherwise. */
export function apiGroupOfPath(pathname: string): string | undefined {
  const parts = pathname.replace(/^\/+/, '').split('/');
  if (parts[0] === 'api') return '';
  if (parts[0] === 'apis' && parts[1]) return parts[1];
  return undefined;
}

/** The RBAC request a call was authorized as. */
export function rbacRequestOf(call: ApiCall): RbacRequest {
  return {
    verb: call.verb,
    apiGroup: call.apiGroup,
    resource: call.resource,
    subresource: call.subresource,
    namespace: call.namespace,
    // RBAC sees no name on a create (the object is in the body) nor on a collection.
    name: call.verb === 'create' ? undefined : call.name,
  };
}

/** `group/resource/subresource` as people read it: `deployments.apps`, `pods/log`. */
export function describeResource(call: Pick<ApiCall, 'apiGroup' | 'resource' | 'subresource'>): string {
  const resource = `${call.resource ?? ''}${call.subresource ? `/${call.subresource}` : ''}`;
  return call.apiGroup ? `${resource} (${call.apiGroup})` : resource;
}
