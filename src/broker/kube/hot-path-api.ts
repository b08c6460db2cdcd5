// The Kubernetes calls made per grant, and nothing else: the JWT-use record, the grant's objects
// and token, and the reads and deletes of a revocation, a rollback or the reaper (about five
// deletions for every expired grant); and the reaper's listings, which grow with the live grants
// (a page at a time, kube/paged-list.ts).
// Named and shaped like client-node's own methods, so a call site moves by changing one word.
// Everything else (watches, lists, TokenReview, the leader lease, policy checks) stays on
// client-node, where its cost is off the answer's path.
import type {
  AuthenticationV1TokenRequest,
  CoordinationV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  V1DeleteOptions,
  V1Lease,
  V1ObjectMeta,
  V1Role,
  V1RoleBinding,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { KubeConnection } from './connection.js';
import type { ListPage } from './paged-list.js';

/** The metadata the broker reads back: as JSON from the connection, or client-node's object. */
export type ObjectMeta = Pick<
  V1ObjectMeta,
  | 'name'
  | 'namespace'
  | 'uid'
  | 'labels'
  | 'annotations'
  | 'ownerReferences'
  | 'resourceVersion'
  | 'creationTimestamp'
>;
export interface KubeObject {
  metadata?: ObjectMeta;
}
export interface IssuedToken {
  status?: { token?: string; expirationTimestamp?: Date | string };
}

interface InNamespace<Body> {
  namespace: string;
  body: Body;
}
interface Named {
  name: string;
  namespace: string;
}
interface Deletion extends Named {
  body?: V1DeleteOptions;
}
/** One page of a namespaced list (paged-list.ts). */
interface PageOf {
  namespace: string;
  labelSelector?: string;
  limit: number;
  _continue?: string;
}
/** A listed object's metadata, as the reaper reads it. */
export interface ListedObject {
  metadata?: ObjectMeta & { deletionTimestamp?: Date | string };
}

export interface HotPathApi {
  createNamespacedLease(p: InNamespace<V1Lease>): Promise<KubeObject>;
  deleteNamespacedLease(p: Deletion): Promise<unknown>;
  createNamespacedServiceAccount(p: InNamespace<V1ServiceAccount>): Promise<KubeObject>;
  readNamespacedServiceAccount(p: Named): Promise<KubeObject>;
  deleteNamespacedServiceAccount(p: Deletion): Promise<unknown>;
  createNamespacedServiceAccountToken(
    p: Named & { body: AuthenticationV1TokenRequest },
  ): Promise<IssuedToken>;
  createNamespacedRole(p: InNamespace<V1Role>): Promise<KubeObject>;
  readNamespacedRole(p: Named): Promise<KubeObject>;
  deleteNamespacedRole(p: Deletion): Promise<unknown>;
  createNamespacedRoleBinding(p: InNamespace<V1RoleBinding>): Promise<KubeObject>;
  readNamespacedRoleBinding(p: Named): Promise<KubeObject>;
  deleteNamespacedRoleBinding(p: Deletion): Promise<unknown>;
  listNamespacedServiceAccount(p: PageOf): Promise<ListPage<ListedObject>>;
  listNamespacedLease(p: PageOf): Promise<ListPage<ListedObject>>;
}

const seg = encodeURIComponent;
const core = (namespace: string, plural: string) => `/api/v1/namespaces/${seg(namespace)}/${plural}`;
const rbac = (namespace: string, plural: string) =>
  `/apis/rbac.authorization.k8s.io/v1/namespaces/${seg(namespace)}/${plural}`;
const leases = (namespace: string) => `/apis/coordination.k8s.io/v1/namespaces/${seg(namespace)}/leases`;
const page = (p: PageOf) =>
  `?${new URLSearchParams({
    limit: String(p.limit),
    ...(p.labelSelector && { labelSelector: p.labelSelector }),
    ...(p._continue && { continue: p._continue }),
  }).toString()}`;

/** The hot path as JSON calls over the broker's connection (connection.ts). */
export function jsonHotPath(connection: Pick<KubeConnection, 'request'>): HotPathApi {
  const call = <T>(method: string, path: string, body?: unknown) => connection.request<T>(method, path, body);
  return {
    createNamespacedLease: (p) => call('POST', leases(p.namespace), p.body),
    deleteNamespacedLease: (p) => call('DELETE', `${leases(p.namespace)}/${seg(p.name)}`, p.body),
    createNamespacedServiceAccount: (p) => call('POST', core(p.namespace, 'serviceaccounts'), p.body),
    readNamespacedServiceAccount: (p) =>
      call('GET', `${core(p.namespace, 'serviceaccounts')}/${seg(p.name)}`),
    deleteNamespacedServiceAccount: (p) =>
      call('DELETE', `${core(p.namespace, 'serviceaccounts')}/${seg(p.name)}`, p.body),
    createNamespacedServiceAccountToken: (p) =>
      call('POST', `${core(p.namespace, 'serviceaccounts')}/${seg(p.name)}/token`, p.body),
    createNamespacedRole: (p) => call('POST', rbac(p.namespace, 'roles'), p.body),
    readNamespacedRole: (p) => call('GET', `${rbac(p.namespace, 'roles')}/${seg(p.name)}`),
    deleteNamespacedRole: (p) => call('DELETE', `${rbac(p.namespace, 'roles')}/${seg(p.name)}`, p.body),
    createNamespacedRoleBinding: (p) => call('POST', rbac(p.namespace, 'rolebindings'), p.body),
    readNamespacedRoleBinding: (p) => call('GET', `${rbac(p.namespace, 'rolebindings')}/${seg(p.name)}`),
    deleteNamespacedRoleBinding: (p) =>
      call('DELETE', `${rbac(p.namespace, 'rolebindings')}/${seg(p.name)}`, p.body),
    listNamespacedServiceAccount: (p) => call('GET', `${core(p.namespace, 'serviceaccounts')}${page(p)}`),
    listNamespacedLease: (p) => call('GET', `${leases(p.namespace)}${page(p)}`),
  };
}

/** The hot path over client-node's API objects: for a cluster behind a proxy-url, or plain HTTP. */
export function clientNodeHotPath(apis: {
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  coordination: CoordinationV1Api;
}): HotPathApi {
  return {
    createNamespacedLease: (p) => apis.coordination.createNamespacedLease(p),
    deleteNamespacedLease: (p) => apis.coordination.deleteNamespacedLease(p),
    createNamespacedServiceAccount: (p) => apis.core.createNamespacedServiceAccount(p),
    readNamespacedServiceAccount: (p) => apis.core.readNamespacedServiceAccount(p),
    deleteNamespacedServiceAccount: (p) => apis.core.deleteNamespacedServiceAccount(p),
    createNamespacedServiceAccountToken: (p) => apis.core.createNamespacedServiceAccountToken(p),
    createNamespacedRole: (p) => apis.rbac.createNamespacedRole(p),
    readNamespacedRole: (p) => apis.rbac.readNamespacedRole(p),
    deleteNamespacedRole: (p) => apis.rbac.deleteNamespacedRole(p),
    createNamespacedRoleBinding: (p) => apis.rbac.createNamespacedRoleBinding(p),
    readNamespacedRoleBinding: (p) => apis.rbac.readNamespacedRoleBinding(p),
    deleteNamespacedRoleBinding: (p) => apis.rbac.deleteNamespacedRoleBinding(p),
    listNamespacedServiceAccount: (p) => apis.core.listNamespacedServiceAccount(p),
    listNamespacedLease: (p) => apis.coordination.listNamespacedLease(p),
  };
}
