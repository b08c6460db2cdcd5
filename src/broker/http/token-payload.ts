// What a bearer token says before anyone verified it: only to pick the check to run and to refuse
// early what could never pass it. Nothing here authenticates anyone.
import type { JWTPayload } from 'jose';
import { parseServiceAccountUser } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';
import { MAX_TOKEN_BYTES } from '../auth/token-verifier.js';
import { unverifiedJwtPayload } from '../unverified-jwt.js';

/** The bearer token's payload, unverified: only to pick the check and to refuse early. */
export function unverifiedPayload(token: string): JWTPayload {
  const payload = token.length > MAX_TOKEN_BYTES ? undefined : unverifiedJwtPayload(token);
  if (!payload) throw new BrokerError('ERR_BAD_REQUEST', 'jwt_malformed', 'bearer token is not a JWT');
  return payload;
}

/**
 * The ServiceAccount a Kubernetes token names as its subject (service-account tokens carry a
 * `kubernetes.io` claim; GitHub's do not). A token can pass a grant's TokenReview check only if this
 * is that grant in a managed namespace, so any other subject is refused without asking the API server.
 */
export function serviceAccountSubject(payload: JWTPayload): { namespace: string; name: string } | undefined {
  return parseServiceAccountUser(typeof payload.sub === 'string' ? payload.sub : '');
}
