// Shape checks for the GitHub Actions claims the broker relies on, after the signature and the
// standard claims passed. Type confusion is refused: a number, list or object where GitHub sends a
// string never reaches the policy. IDs must be canonical decimal strings, because the policy
// compares them as exact strings ("0123" must not be a second spelling of "123").
import type { VerifiedClaims } from '../types.js';
import { BrokerError } from '../../shared/errors.js';
import { UNSAFE_TEXT } from '../unsafe-text.js';

/** Positive decimal integer without leading zeros, at most 20 digits (GitHub IDs are 64-bit). */
const DECIMAL_ID = /^[1-9][0-9]{0,19}$/;
const MAX_CLAIM_LENGTH = 1024;
const MAX_JTI_LENGTH = 256;

const REQUIRED_STRINGS = ['jti', 'repository', 'repository_owner', 'ref', 'event_name'] as const;
const REQUIRED_IDS = ['repository_id', 'repository_owner_id', 'run_id', 'run_attempt'] as const;
/** Optional claims the policy or the audit trail reads: strings when present. */
const OPTIONAL_STRINGS = [
  'sub',
  'workflow',
  'workflow_ref',
  'job_workflow_ref',
  'job_workflow_sha',
  'sha',
  'actor',
  'environment',
  'runner_environment',
  'ref_type',
] as const;
const OPTIONAL_IDS = ['actor_id', 'check_run_id'] as const;

function refuse(claim: string, problem: string): never {
  throw new BrokerError('ERR_UNAUTHENTICATED', 'jwt_claims', `claim "${claim}" ${problem}`);
}

function checkString(payload: Record<string, unknown>, claim: string, pattern?: RegExp): void {
  const value = payload[claim];
  if (typeof value !== 'string') refuse(claim, value === undefined ? 'is missing' : 'is not a string');
  if (value.length === 0) refuse(claim, 'is empty');
  if (value.length > (claim === 'jti' ? MAX_JTI_LENGTH : MAX_CLAIM_LENGTH)) refuse(claim, 'is too long');
  // Refused, not escaped: a claim is what GitHub signed, and an annotation or a policy match on an
  // altered copy would be about another value. IDs and the names GitHub generates never carry
  // them; a branch, workflow or environment name that does is refused (rename it).
  if (UNSAFE_TEXT.test(value)) refuse(claim, 'contains control, line-separator or bidi characters');
  if (pattern && !pattern.test(value)) refuse(claim, 'is not a decimal ID');
}

/** Returns the payload typed as VerifiedClaims, or throws BrokerError reason 'jwt_claims'. */
export function checkGitHubClaims(payload: Record<string, unknown>): VerifiedClaims {
  for (const claim of REQUIRED_STRINGS) checkString(payload, claim);
  for (const claim of REQUIRED_IDS) checkString(payload, claim, DECIMAL_ID);
  for (const claim of OPTIONAL_STRINGS) if (payload[claim] !== undefined) checkString(payload, claim);
  for (const claim of OPTIONAL_IDS) if (payload[claim] !== undefined) checkString(payload, claim, DECIMAL_ID);
  if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number')
    refuse('exp', 'or "iat" is missing');
  return payload as VerifiedClaims;
}
