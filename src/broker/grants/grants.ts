// Creates a grant's objects: the ServiceAccount (root, carrying labels and the expiry; beside the
// JWT's spending, grant-root.ts), then in parallel its RoleBinding and a TokenRequest; a failure
// there deletes whatever was created. Then, off the answer's path and only when the mode has one
// (grant-kinds.ts), the self-revoke permission: a RoleBinding to the namespace's shared self-revoke
// Role while its admission guard is verified (shared-self-revoke.ts), the per-grant Role +
// RoleBinding otherwise. The bodies are grant-objects.ts's; what a kind of grant changes is
// grant-kinds.ts's.
import type { Grantable, VerifiedClaims } from '../types.js';
import type { K8sClients } from '../kube/clients.js';
import { isRefused } from '../kube/errors.js';
import { clusterError } from './cluster-error.js';
import { createRootSpendingJwt } from './grant-root.js';
import { deleteGrantObjects } from './revoke.js';
import { InlineRoles } from './inline-roles.js';
import { credentialIdOf } from '../audit.js';
import { requestGrantToken } from './grant-token.js';
import { grantObjects, type GrantObjects } from './grant-objects.js';
import { grantMode, roleRefFor, type GrantMode } from './grant-kinds.js';

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
  /** Gateway mode: the audience of the grant's tokens (grant-kinds.ts). Absent: direct mode. */
  gatewayAudience?: string;
  /** The shared self-revoke Role to bind in a namespace, or undefined for the pair (shared-self-revoke.ts). */
  sharedSelfRevokeRole?: (namespace: string) => Promise<string | undefined>;
  /**
   * Spends the JWT (its JWT-use record), written beside the ServiceAccount (grant-root.ts): nothing
   * is bound or issued unless both succeed. Absent: nothing to spend.
   */
  spendJwt?: () => Promise<void>;
  /** The broker's namespace, where its JWT-use records are: named on the ServiceAccount (grant-proof.ts). */
  ledgerNamespace: string;
}

export async function createGrant(
  k8s: K8sClients,
  claims: VerifiedClaims,
  grantable: Grantable,
  options: CreateGrantOptions,
): Promise<CreatedGrant> {
  const now = options.now ?? Date.now;
  const { namespace } = grantable;
  const mode = grantMode(options.gatewayAudience);
  const expiresAt = options.expiresAt ?? new Date(now() + grantable.ttlSeconds * 1000);
  const objects = grantObjects(claims, { ...grantable, expiresAt, ledgerNamespace: options.ledgerNamespace });
  const { grantId } = objects;

  const inlineRoles = options.inlineRoles ?? new InlineRoles(k8s);
  const roleRef = await roleRefFor(grantable.roleRef, { namespace, inlineRoles }).catch((err: unknown) => {
    throw clusterError('reconcile the inline role', err);
  });
  const uid = await createRootSpendingJwt(
    k8s,
    namespace,
    objects,
    options.spendJwt ?? (() => Promise.resolve()),
    options.onRollbackError,
  );
  try {
    const accessBinding = () =>
      k8s.hotPath.createNamespacedRoleBinding({ namespace, body: objects.accessBinding(uid, roleRef) });
    const tokenRequest = () =>
      requestGrantToken(k8s, { namespace, name: grantId, uid }, mode.tokenSeconds(grantable), mode.audience);
    // allSettled, not all: rollback must wait until neither branch can still create something.
    const [binding, issued] = await Promise.allSettled([accessBinding(), tokenRequest()]);
    if (binding.status === 'rejected') throw binding.reason;
    if (issued.status === 'rejected') throw issued.reason;
    const { token, tokenExpiresAt } = issued.value;
    return {
      grantId,
      namespace,
      serviceAccount: grantId,
      serviceAccountUid: uid,
      token,
      tokenExpiresAt,
      expiresAt: tokenExpiresAt < expiresAt ? tokenExpiresAt : expiresAt,
      credentialId: credentialIdOf(token),
      selfRevoke: selfRevokePermission(k8s, namespace, objects, uid, mode, options),
    };
  } catch (err) {
    await deleteGrantObjects(k8s, namespace, grantId, { uid }).catch((rollbackErr: unknown) =>
      options.onRollbackError?.(`rollback of ${grantId}`, rollbackErr),
    );
    throw clusterError('create grant objects', err);
  }
}

/**
 * Lets the action's post step revoke without the broker: delete exactly this grant's objects.
 * Created after the answer, not before: the job needs this permission only when it ends. The
 * per-grant pair costs two RBAC escalation checks, each waiting for a consistent read of the watch
 * cache (~100 ms, see docs/benchmarks.md); a binding to the shared Role costs none (the broker holds
 * `bind` on it by name). A shared binding the API server refuses (the broker lacks that `bind`)
 * leaves nothing behind, and the pair is made instead. Never rejects.
 */
function selfRevokePermission(
  k8s: K8sClients,
  namespace: string,
  objects: GrantObjects,
  uid: string,
  mode: GrantMode,
  options: Pick<CreateGrantOptions, 'onSelfRevokeError' | 'sharedSelfRevokeRole'>,
): Promise<void> {
  if (!mode.selfRevoke) return Promise.resolve();
  const binding = (sharedRole?: string) =>
    k8s.hotPath.createNamespacedRoleBinding({ namespace, body: objects.revokeBinding(uid, sharedRole) });
  const pair = async () => {
    await k8s.hotPath.createNamespacedRole({ namespace, body: objects.revokeRole(uid) });
    await binding();
  };
  const create = async () => {
    const shared = await options.sharedSelfRevokeRole?.(namespace);
    if (!shared) return pair();
    await binding(shared).catch((err: unknown) => {
      if (!isRefused(err)) throw err;
      return pair();
    });
  };
  return create().catch((err: unknown) => options.onSelfRevokeError?.(objects.grantId, err));
}
