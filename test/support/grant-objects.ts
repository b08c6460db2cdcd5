// Grant objects as the API server lists them, for the scripted Kubernetes fakes of unit tests.
// The labels and annotation are written out, not imported from src/: they are the contract.

/** A grant's root ServiceAccount, expiring at `expiresAt` (any text: the reaper must cope). */
export function grantServiceAccount(name: string, expiresAt: string) {
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      labels: {
        'app.kubernetes.io/managed-by': 'k8s-ephemeral-access',
        'k8s-ephemeral-access.io/grant': name,
      },
      annotations: { 'k8s-ephemeral-access.io/expires-at': expiresAt },
    },
  };
}

/**
 * A JWT-use record (grants/replay-ledger.ts) kept until `keepUntil`; with `grantExpiresAt`, the record of
 * a grant in namespace ci, which proves its ServiceAccount a grant to the reaper.
 */
export function jwtUseRecord(name: string, keepUntil: string, grantExpiresAt?: string) {
  return {
    metadata: {
      name,
      labels: grantExpiresAt ? { 'k8s-ephemeral-access.io/namespace': 'ci' } : {},
      annotations: {
        'k8s-ephemeral-access.io/expires-at': keepUntil,
        ...(grantExpiresAt ? { 'k8s-ephemeral-access.io/grant-expires-at': grantExpiresAt } : {}),
      },
    },
  };
}
