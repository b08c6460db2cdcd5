// Whether the GitHub job behind a verified JWT owns a grant, by the run and job the grant's
// ServiceAccount records in its labels. Renewal and revocation ask differently, on purpose:
// - A renewal has already proven the grant with the grant's own token (only the job that got the
//   grant holds it), so the JWT only has to be of the same run, and of the same job when the grant
//   recorded one; a refusal may say why (403), since the caller holds the grant anyway.
// - A revocation by GitHub JWT has no other proof, so the job must be named on both sides: a grant
//   whose JWT had no check_run_id can only be revoked with its own token (a sibling job of the same
//   run could not be told apart). Anyone else gets the same 404 as for a grant that does not exist,
//   so the endpoint cannot be used to probe for grants.
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import {
  CHECK_RUN_ID_LABEL,
  REPOSITORY_ID_LABEL,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
  labelValue,
} from '../naming.js';
import type { VerifiedClaims } from '../types.js';

type Labels = Readonly<Record<string, string>>;
type RunClaims = Pick<VerifiedClaims, 'repository_id' | 'run_id' | 'run_attempt' | 'check_run_id'>;

/** Whether the grant was issued to this run (repository, run and attempt). */
function isSameRun(labels: Labels, claims: RunClaims): boolean {
  return (
    labels[REPOSITORY_ID_LABEL] === labelValue(claims.repository_id) &&
    labels[RUN_ID_LABEL] === labelValue(claims.run_id) &&
    labels[RUN_ATTEMPT_LABEL] === labelValue(claims.run_attempt)
  );
}

/** Throws 403 unless the job may renew the grant (whose own token it has already shown). */
export function requireRenewer(labels: Labels, claims: RunClaims): void {
  const forbidden = (reason: Reason) => new BrokerError('ERR_FORBIDDEN', reason);
  if (!isSameRun(labels, claims)) throw forbidden('grant_of_another_run');
  const job = labels[CHECK_RUN_ID_LABEL];
  if (job !== undefined && job !== labelValue(claims.check_run_id)) throw forbidden('grant_of_another_job');
}

/** Throws 404 unless the job may revoke the grant on its GitHub JWT alone. */
export function requireRevoker(labels: Labels, claims: RunClaims): void {
  const notFound = (reason: Reason) => new BrokerError('ERR_NOT_FOUND', reason);
  if (!isSameRun(labels, claims)) throw notFound('grant_of_another_run');
  const job = labels[CHECK_RUN_ID_LABEL];
  if (job === undefined || claims.check_run_id === undefined || job !== labelValue(claims.check_run_id))
    throw notFound('grant_of_another_job');
}
