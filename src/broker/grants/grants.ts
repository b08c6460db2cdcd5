// Creates a grant: the ServiceAccount (root, carrying labels and the expiry), then in parallel its
// RoleBinding and a TokenRequest; a failure there deletes whatever was created. Then, off the
// answer's path and in direct mode only, the self-revoke Role + RoleBinding. Every object is owned
// by the ServiceAccount. In gateway mode the job's token is for the gateway's audience alone (the
// API server refuses it), and no self-revoke pair is made: the job cannot reach the API server, so
// it could never use it (docs/benchmarks.md, "Write budget").
// An inline role's grants bind the Role they share in the namespace (grants/inline-roles.ts), which
// exists before the ServiceAccount is created and belongs to no grant.
import type { V1OwnerReference, V1PolicyRule } from '@kubernetes/client-node';
import { BrokerError } from '../../shared/errors.js';
import type { Grantable, VerifiedClaims } from '../types.js';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError, isAlreadyExists, isRefused, statusCodeOf } from '../kube/errors.js';
import { deleteGrantObjects } from './revoke.js';
import { InlineRoles } from './inline-roles.js';
import { PART_LABEL, grantAnnotations, grantIdFor, grantLabels, revokeObjectName } from '../naming.js';
import { credentialIdOf } from '../audit.js';
import { requestGrantToken } from './grant-token.js';

export { MIN_TOKEN_SECONDS } from './grant-token.js';
const RBAC_GROUP = 'rbac.authorization.k8s.io';

export interface CreatedGrant {
  grantId: string;
  namespace: string;
  serviceAccount: string;
  serviceAccountUid: string;
  token: string;
  tokenExpiresAt: Date;
  /** When the reaper deletes the grant at the latest; never after tokenExpiresAt. */
  expiresAt: Date;
  credentialId?: string;
  /**
   * Resolves once the self-revoke Role and RoleBinding exist, or could not be created (then
   * onSelfRevokeError was called: the grant still works, and is revoked through the broker or
   * reaped at expiry). Never rejects; the answer does not wait for it. Resolved at once in gateway
   * mode, which makes no pair.
   */
  selfRevoke: Promise<void>;
}

export interface CreateGrantOptions {
  now?: () => number;
  /** When the grant ends; now + ttl by default. The exchange fixes it first, for the JWT-use record. */
  expiresAt?: Date;
  /** Called when the self-revoke objects could not be created (selfRevoke never rejects). */
  onSelfRevokeError?: (grantId: string, err: unknown) => void;
  /** Called with a description of each rollback failure; the reaper will find leftovers by label. */
  onRollbackError?: (what: string, err: unknown) => void;
  /** The broker's shared inline Roles; without it, each inline grant reconciles its Role afresh. */
  inlineRoles?: InlineRoles;
  /**
   * Gateway mode: the job's token is for this audience only, lives until the rule's session limit
   * (the gateway and the reaper end the grant, not the token; so a renewal needs no new token),
   * and the grant gets no self-revoke pair. Absent: direct mode.
   */
  gatewayAudience?: string;
}

export async function createGrant(
  k8s: K8sClients,
  claims: VerifiedClaims,
  grantable: Grantable,
  options: CreateGrantOptions = {},
): Promise<CreatedGrant> {
  const now = options.now ?? Date.now;
  const grantId = grantIdFor(claims);
  const namespace = grantable.namespace;
  const expiresAt = options.expiresAt ?? new Date(now() + grantable.ttlSeconds * 1000);
  const labels = grantLabels(grantId, claims);
  const annotations = grantAnnotations(claims, {
    expiresAt,
    role: grantable.role,
    ruleName: grantable.ruleName,
  });

  // 0. An inline role's shared Role, before anything of the grant exists: a Role the broker may not
  // create (it lacks those permissions) leaves nothing to roll back. Usually already there.
  let roleRef: { apiGroup: string; kind: string; name: string };
  if (grantable.roleRef.kind === 'Inline') {
    const inline = options.inlineRoles ?? new InlineRoles(k8s);
    try {
      const name = await inline.ensure({
        namespace,
        role: grantable.roleRef.name,
        rules: grantable.roleRef.rules,
      });
      roleRef = { apiGroup: RBAC_GROUP, kind: 'Role', name };
    } catch (err) {
      throw clusterError('reconcile the inline role', err);
    }
  } else {
    roleRef = { apiGroup: RBAC_GROUP, kind: grantable.roleRef.kind, name: grantable.roleRef.name };
  }

  // 1. The root. Its name is the grant id, so a replayed JWT stops here with AlreadyExists.
  let uid: string;
  try {
    const sa = await k8s.hotPath.createNamespacedServiceAccount({
      namespace,
      body: {
        metadata: { name: grantId, labels, annotations },
        // The job gets its token from the broker only; nothing should mount this SA's token.
        automountServiceAccountToken: false,
      },
    });
    uid = sa.metadata?.uid ?? '';
    if (!uid) throw new Error('the API server returned a ServiceAccount without uid');
  } catch (err) {
    if (isAlreadyExists(err))
      throw new BrokerError('ERR_UNAUTHENTICATED', 'jwt_replayed', `grant ${grantId} already exists`, {
        cause: err,
      });
    throw clusterError('create serviceaccount', err);
  }

  const owner: V1OwnerReference = { apiVersion: 'v1', kind: 'ServiceAccount', name: grantId, uid };
  const meta = (name: string, part: string) => ({
    name,
    labels: { ...labels, [PART_LABEL]: part },
    annotations,
    ownerReferences: [owner],
  });
  const subject = { kind: 'ServiceAccount', name: grantId, namespace };

  // Lets the action's post step revoke without the broker: delete exactly this grant's objects.
  // Created after the answer, not before: the API server's RBAC escalation check on a new Role and
  // on a binding to it waits for a consistent read of the watch cache (~100 ms each, see
  // docs/benchmarks.md), and the job needs this permission only when it ends, not now.
  const revokeBinding = async (): Promise<void> => {
    const name = revokeObjectName(grantId);
    // Never the shared inline Role: other grants bind it.
    const rules: V1PolicyRule[] = [
      { apiGroups: [RBAC_GROUP], resources: ['rolebindings'], verbs: ['delete'], resourceNames: [grantId] },
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['delete'], resourceNames: [grantId] },
    ];
    await k8s.hotPath.createNamespacedRole({ namespace, body: { metadata: meta(name, 'revoke'), rules } });
    await k8s.hotPath.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: meta(name, 'revoke'),
        roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name },
        subjects: [subject],
      },
    });
  };

  try {
    const accessBinding = async (): Promise<void> => {
      await k8s.hotPath.createNamespacedRoleBinding({
        namespace,
        body: { metadata: meta(grantId, 'grant'), roleRef, subjects: [subject] },
      });
    };
    const gatewayAudience = options.gatewayAudience;
    const tokenSeconds = gatewayAudience
      ? Math.max(grantable.ttlSeconds, grantable.maxSessionSeconds ?? 0)
      : grantable.ttlSeconds;
    const tokenRequest = () =>
      requestGrantToken(k8s, { namespace, name: grantId, uid }, tokenSeconds, gatewayAudience);
    // allSettled, not all: rollback must wait until neither branch can still create something.
    const [binding, issued] = await Promise.allSettled([accessBinding(), tokenRequest()]);
    if (binding.status === 'rejected') throw binding.reason;
    if (issued.status === 'rejected') throw issued.reason;
    const { token, tokenExpiresAt } = issued.value;
    const effectiveExpiry = tokenExpiresAt < expiresAt ? tokenExpiresAt : expiresAt;
    return {
      grantId,
      namespace,
      serviceAccount: grantId,
      serviceAccountUid: uid,
      token,
      tokenExpiresAt,
      expiresAt: effectiveExpiry,
      credentialId: credentialIdOf(token),
      selfRevoke: gatewayAudience
        ? Promise.resolve()
        : revokeBinding().catch((err: unknown) => options.onSelfRevokeError?.(grantId, err)),
    };
  } catch (err) {
    await deleteGrantObjects(k8s, namespace, grantId, { uid }).catch((rollbackErr: unknown) =>
      options.onRollbackError?.(`rollback of ${grantId}`, rollbackErr),
    );
    throw clusterError('create grant objects', err);
  }
}

/** Maps a Kubernetes failure to a generic client error; the log keeps the API's own message. */
function clusterError(step: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const status = statusCodeOf(err);
  const message = `${step}: ${describeK8sError(err)}`;
  if (isRefused(err) || status === 409)
    return new BrokerError('ERR_INTERNAL', 'grant_refused_by_cluster', message, { cause: err });
  return new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', message, { cause: err });
}
