// A new grant as one unit: spend the JWT (its record written beside the grant's root, so two
// replicas cannot both grant it: grant-root.ts), create the grant's objects, and if they fail, give
// the JWT back (nothing was granted, so it may be used again, e.g. a retry after a 503), unless this
// was itself a replay, whose record belongs to the first use or proves a grant found in the way.
import { BrokerError } from '../../shared/errors.js';
import { describeK8sError } from '../kube/errors.js';
import { grantIdFor } from '../naming.js';
import type { Grantable, VerifiedClaims } from '../types.js';
import type { GrantDeps } from './grant-deps.js';
import { createGrant, type CreatedGrant } from './grants.js';
import { deleteJwtUse, spendJwt } from './replay-ledger.js';

export async function create(
  deps: GrantDeps,
  claims: VerifiedClaims,
  grantable: Grantable,
  /** For the log lines of what fails off the answer's path. */
  requestId: string,
): Promise<CreatedGrant> {
  const expiresAt = new Date(deps.now() + grantable.ttlSeconds * 1000);
  const ledger = deps.replayLedger;
  /** The record this exchange wrote (its uid: an answer without one gives nothing back). */
  let written: { uid?: string } | undefined;
  const logRollbackError = (what: string, err: unknown) =>
    deps.logger.error('rollback failed; the reaper will delete the leftovers', {
      requestId,
      what,
      error: describeK8sError(err),
    });
  const { sharedSelfRevoke } = deps;
  let grant: CreatedGrant;
  try {
    grant = await createGrant(deps.k8s, claims, grantable, {
      now: deps.now,
      expiresAt,
      spendJwt: async () => {
        const uid = await spendJwt(deps.k8s, ledger, claims, deps.now, {
          namespace: grantable.namespace,
          grantExpiresAt: expiresAt,
        });
        written = { uid };
      },
      ledgerNamespace: ledger.namespace,
      inlineRoles: deps.inlineRoles,
      gatewayAudience: deps.gatewayAudience,
      sharedSelfRevokeRole: sharedSelfRevoke && ((ns) => sharedSelfRevoke.roleFor(ns)),
      onRollbackError: logRollbackError,
      onSelfRevokeError: (grantId, err) =>
        deps.logger.error(
          'could not create the self-revoke permission; revoke through the broker or the reaper',
          {
            requestId,
            grantId,
            error: describeK8sError(err),
          },
        ),
    });
  } catch (err) {
    const replay = err instanceof BrokerError && err.reason === 'jwt_replayed';
    const grantId = grantIdFor(claims);
    // A record this exchange did not write is another's (a replica that won it, a revocation): never
    // given back. Nor is one that now proves a grant found in the way (a replay).
    if (written?.uid && !replay)
      await deleteJwtUse(deps.k8s, ledger.namespace, grantId, written.uid).catch((e: unknown) =>
        logRollbackError(`JWT-use record ${grantId}`, e),
      );
    throw err;
  }
  deps.grantWork.track(grant.grantId, grant.selfRevoke);
  return grant;
}
