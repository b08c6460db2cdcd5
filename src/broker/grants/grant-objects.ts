// The bodies of a grant's Kubernetes objects, built without a client: the ServiceAccount (root,
// carrying labels and the expiry), the access RoleBinding, the self-revoke Role and RoleBinding, and
// the TokenRequest. Every object but the root is owned by the ServiceAccount, so the garbage
// collector removes what a deletion missed. The broker (grants.ts) sends these, and the bench's
// floor (bench/lib/grant-floor.ts) sends the very same bodies through its own client.
import type {
  AuthenticationV1TokenRequest,
  V1ObjectMeta,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  V1RoleRef,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { VerifiedClaims } from '../types.js';
import {
  LEDGER_ANNOTATION,
  PART_LABEL,
  grantAnnotations,
  grantIdFor,
  grantLabels,
  revokeObjectName,
} from '../naming.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

/** TokenRequest refuses anything shorter (MinTokenAgeSec). The grant itself may be shorter. */
export const MIN_TOKEN_SECONDS = 600;

/** What a grant's objects say about it besides the claims: where, which role, by which rule, until when. */
export interface GrantTarget {
  namespace: string;
  role: string;
  ruleName: string;
  expiresAt: Date;
  /** The broker's namespace, where its JWT-use records are (LEDGER_ANNOTATION on the root). */
  ledgerNamespace: string;
}

export interface GrantObjects {
  grantId: string;
  serviceAccount: V1ServiceAccount;
  /** Binds the grant's identity to its role; the grant's whole permission. */
  accessBinding(uid: string, roleRef: V1RoleRef): V1RoleBinding;
  /** Lets the job delete exactly this grant's objects (the action's post step, without the broker). */
  revokeRole(uid: string): V1Role;
  /** Binds the grant's own revokeRole, or (`sharedRole`) the namespace's shared self-revoke Role. */
  revokeBinding(uid: string, sharedRole?: string): V1RoleBinding;
}

/** The bodies of one grant's objects; `uid` is the ServiceAccount's, for the owner references. */
export function grantObjects(claims: VerifiedClaims, target: GrantTarget): GrantObjects {
  const grantId = grantIdFor(claims);
  const labels = grantLabels(grantId, claims);
  const annotations = grantAnnotations(claims, {
    expiresAt: target.expiresAt,
    role: target.role,
    ruleName: target.ruleName,
  });
  const owned = (uid: string, name: string, part: string): V1ObjectMeta => ({
    name,
    labels: { ...labels, [PART_LABEL]: part },
    annotations,
    ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: grantId, uid }],
  });
  const subjects = [{ kind: 'ServiceAccount', name: grantId, namespace: target.namespace }];
  const revokeName = revokeObjectName(grantId);
  return {
    grantId,
    serviceAccount: {
      // Only the root names the ledger: what lets the reaper remove a root whose record was never
      // written (grant-proof.ts).
      metadata: {
        name: grantId,
        labels,
        annotations: { ...annotations, [LEDGER_ANNOTATION]: target.ledgerNamespace },
      },
      // The job gets its token from the broker only; nothing should mount this SA's token.
      automountServiceAccountToken: false,
    },
    accessBinding: (uid, roleRef) => ({ metadata: owned(uid, grantId, 'grant'), roleRef, subjects }),
    // Never the shared inline Role: other grants bind it.
    revokeRole: (uid) => ({ metadata: owned(uid, revokeName, 'revoke'), rules: selfRevokeRules(grantId) }),
    // Same name either way, so revocation, the reaper and the post step treat both alike.
    revokeBinding: (uid, sharedRole) => ({
      metadata: owned(uid, revokeName, 'revoke'),
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: sharedRole ?? revokeName },
      subjects,
    }),
  };
}

/** Delete this grant's access RoleBinding and its ServiceAccount, nothing else. */
function selfRevokeRules(grantId: string): V1PolicyRule[] {
  return [
    { apiGroups: [RBAC_GROUP], resources: ['rolebindings'], verbs: ['delete'], resourceNames: [grantId] },
    { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['delete'], resourceNames: [grantId] },
  ];
}

/**
 * The shared self-revoke Role's rules: delete any ServiceAccount or RoleBinding of the namespace.
 * Only the self-revoke guard (an admission policy) narrows them to the caller's own objects, so it
 * is bound only while that guard is verified (shared-self-revoke.ts).
 */
export const SHARED_SELF_REVOKE_RULES: readonly V1PolicyRule[] = Object.freeze([
  { apiGroups: [RBAC_GROUP], resources: ['rolebindings'], verbs: ['delete'] },
  { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['delete'] },
]);

/** A TokenRequest for the ServiceAccount with this uid (never a same-named successor). */
export function tokenRequestBody(
  uid: string,
  seconds: number,
  /** The token's one audience; absent: the API server's own (a token the API server accepts). */
  audience?: string,
): AuthenticationV1TokenRequest {
  return {
    metadata: { uid },
    spec: {
      audiences: audience ? [audience] : [],
      expirationSeconds: Math.max(MIN_TOKEN_SECONDS, Math.ceil(seconds)),
    },
  };
}
