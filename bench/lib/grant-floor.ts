// The floor for an exchange: exactly the Kubernetes writes the broker makes for one grant
// (src/broker/grants/replay-ledger.ts + src/broker/grants/grants.ts), with the same object bodies (built
// by the broker's own grant-objects.ts and jwtUseLease), made directly through the minimal client under
// the broker's own identity. Three shapes:
//   sequential: Lease, ServiceAccount, RoleBinding, TokenRequest, then revoke Role → revoke RoleBinding
//   parallel:   [Lease ∥ ServiceAccount] → [RoleBinding ∥ TokenRequest], then revoke Role → revoke RoleBinding
//   bare:       ServiceAccount → [RoleBinding ∥ TokenRequest], nothing else
//   shared:     the parallel shape with the shared self-revoke mechanism: after the token one
//               RoleBinding to the namespace's shared self-revoke Role (which must exist), no Role
//               (src/broker/grants/shared-self-revoke.ts: what the broker writes while its guard holds)
//   gateway:    [Lease ∥ ServiceAccount] → [RoleBinding ∥ TokenRequest for the target's audience]:
//               gateway mode's write set (src/broker/grants/grant-kinds.ts), no self-revoke objects
// The parallel shape keeps only the true data dependencies: the bindings and the TokenRequest need
// the ServiceAccount's uid, a RoleBinding to the revoke Role needs that Role to exist (RBAC
// escalation check). It is the fastest any client could do the same work. The bare shape is the
// least any such broker must write (an identity, its permission, its token): what the JWT-use
// record and the self-revoke pair cost shows as the distance between it and the parallel shape.
// An inline role's grant writes these very objects: its RoleBinding names the Role the role shares
// in the namespace (src/broker/grants/inline-roles.ts) instead of a ClusterRole, and that Role exists
// before any grant, so a ClusterRole target is its floor too.
import { randomUUID } from 'node:crypto';
import type { VerifiedClaims } from '../../src/broker/types.js';
import { RBAC_GROUP, grantObjects, tokenRequestBody } from '../../src/broker/grants/grant-objects.js';
import { SELF_REVOKE_ROLE } from '../../src/broker/naming.js';
import { jwtRecordKeepAfterExpiry, jwtUseLease } from '../../src/broker/grants/replay-ledger.js';
import { defaultClaims } from '../../test/support/oidc-issuer.js';
import type { MinimalKubeClient } from './kube-client.js';

/** The test brokers' leewaySeconds (test/support/broker.ts): how long after exp they keep a JWT-use record. */
const BROKER_LEEWAY_SECONDS = 5;

export type FloorShape = 'sequential' | 'parallel' | 'bare' | 'shared' | 'gateway';

export interface GrantTarget {
  namespace: string;
  /** Where the broker keeps JWT-use records (its own namespace). */
  ledgerNamespace: string;
  clusterRole: string;
  role: string;
  ruleName: string;
  ttlSeconds: number;
  /** The issuer URL the claims carry (only used in names, labels and annotations). */
  issuer: string;
  /** The one audience of the grant's token (gateway mode: the gateway's); absent: the API server's. */
  audience?: string;
}

/** Claims like the ones the broker derives from a verified token: a fresh jti each time. */
export function benchClaims(issuer: string, repositoryId: string): VerifiedClaims {
  const now = Math.floor(Date.now() / 1000);
  return {
    ...defaultClaims({ repository_id: repositoryId }),
    iss: issuer,
    aud: 'k8s-ephemeral-access',
    jti: randomUUID(),
    iat: now,
    exp: now + 300,
  } as VerifiedClaims;
}

/** The bodies the broker sends for one grant, from the broker's own builders (apiVersion and kind added). */
export function grantBodies(claims: VerifiedClaims, t: GrantTarget, expiresAt: Date) {
  const objects = grantObjects(claims, {
    namespace: t.namespace,
    role: t.role,
    ruleName: t.ruleName,
    expiresAt,
    ledgerNamespace: t.ledgerNamespace,
  });
  const { grantId } = objects;
  // Kept until exp + leeway + margin, and at least until the grant ends: the reaper's proof that the
  // grant is the broker's.
  const keepUntil = new Date((claims.exp + jwtRecordKeepAfterExpiry(BROKER_LEEWAY_SECONDS)) * 1000);
  const use = { grantId, namespace: t.namespace, grantExpiresAt: expiresAt, keepUntil };
  const rbac = { apiVersion: `${RBAC_GROUP}/v1` };
  const roleRef = { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: t.clusterRole };
  return {
    grantId,
    lease: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...jwtUseLease(use, Date.now()) },
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', ...objects.serviceAccount },
    accessBinding: (uid: string) => ({
      ...rbac,
      kind: 'RoleBinding',
      ...objects.accessBinding(uid, roleRef),
    }),
    revokeRole: (uid: string) => ({ ...rbac, kind: 'Role', ...objects.revokeRole(uid) }),
    revokeBinding: (uid: string, sharedRole?: string) => ({
      ...rbac,
      kind: 'RoleBinding',
      ...objects.revokeBinding(uid, sharedRole),
    }),
    tokenRequest: (uid: string) => ({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      ...tokenRequestBody(uid, t.ttlSeconds, t.audience),
    }),
  };
}

export interface FloorGrant {
  grantId: string;
  token: string;
  /** The self-revoke objects, created after the token as the broker does (bare, gateway: none). */
  settled: Promise<void>;
}

/** Creates one grant's objects directly; `expiresAt` defaults to now + ttl like the broker. */
export async function floorGrant(
  kube: MinimalKubeClient,
  t: GrantTarget,
  claims: VerifiedClaims,
  shape: FloorShape,
  expiresAt = new Date(Date.now() + t.ttlSeconds * 1000),
): Promise<FloorGrant> {
  const b = grantBodies(claims, t, expiresAt);
  const ns = encodeURIComponent(t.namespace);
  const core = `/api/v1/namespaces/${ns}`;
  const rbac = `/apis/${RBAC_GROUP}/v1/namespaces/${ns}`;
  const createLease = () =>
    kube.json('POST', `/apis/coordination.k8s.io/v1/namespaces/${t.ledgerNamespace}/leases`, b.lease);
  const createSa = async () =>
    String(
      ((await kube.json('POST', `${core}/serviceaccounts`, b.serviceAccount)).metadata as { uid: string })
        .uid,
    );
  const accessBinding = (uid: string) => kube.json('POST', `${rbac}/rolebindings`, b.accessBinding(uid));
  const revokePair = async (uid: string) => {
    await kube.json('POST', `${rbac}/roles`, b.revokeRole(uid));
    await kube.json('POST', `${rbac}/rolebindings`, b.revokeBinding(uid));
  };
  const tokenRequest = async (uid: string) => {
    const tr = await kube.json<{ status: { token: string } }>(
      'POST',
      `${core}/serviceaccounts/${b.grantId}/token`,
      b.tokenRequest(uid),
    );
    return tr.status.token;
  };

  // Like the broker, both full shapes hand out the token before the self-revoke pair exists.
  if (shape === 'bare') {
    const uid = await createSa();
    const [, token] = await Promise.all([accessBinding(uid), tokenRequest(uid)]);
    return { grantId: b.grantId, token, settled: Promise.resolve() };
  }
  if (shape === 'sequential') {
    await createLease();
    const uid = await createSa();
    await accessBinding(uid);
    const token = await tokenRequest(uid);
    return { grantId: b.grantId, token, settled: revokePair(uid) };
  }
  const [, uid] = await Promise.all([createLease(), createSa()]);
  const [, token] = await Promise.all([accessBinding(uid), tokenRequest(uid)]);
  if (shape === 'gateway') return { grantId: b.grantId, token, settled: Promise.resolve() };
  const selfRevoke =
    shape === 'shared'
      ? kube
          .json('POST', `${rbac}/rolebindings`, b.revokeBinding(uid, SELF_REVOKE_ROLE))
          .then(() => undefined)
      : revokePair(uid);
  return { grantId: b.grantId, token, settled: selfRevoke };
}
