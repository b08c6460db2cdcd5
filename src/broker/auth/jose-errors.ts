// Translates jose failures into BrokerErrors by their stable `code` (never by message text).
// Malformed input is a bad request; every other token problem is "unauthenticated" with a precise
// reason for logs and metrics. The client only ever sees the generic CLIENT_MESSAGE.
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';

interface JoseLikeError {
  code: string;
  claim?: string;
  reason?: string;
  message: string;
}

function isJoseError(err: unknown): err is JoseLikeError {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_J');
}

function claimReason(err: JoseLikeError): Reason {
  switch (err.claim) {
    case 'iss':
      return 'jwt_issuer';
    case 'aud':
      return 'jwt_audience';
    case 'nbf':
    case 'iat':
      return err.reason === 'check_failed' ? 'jwt_not_yet_valid' : 'jwt_claims';
    default:
      return 'jwt_claims';
  }
}

export function toBrokerError(err: unknown): unknown {
  if (err instanceof BrokerError || !isJoseError(err)) return err;
  const fail = (reason: Reason, code: 'ERR_UNAUTHENTICATED' | 'ERR_BAD_REQUEST' = 'ERR_UNAUTHENTICATED') =>
    new BrokerError(code, reason, err.message, { cause: err });
  switch (err.code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('jwt_signature');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail('jwt_alg');
    case 'ERR_JWT_EXPIRED':
      return fail('jwt_expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return fail(claimReason(err));
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return fail('jwt_unknown_kid');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return fail('jwt_malformed', 'ERR_BAD_REQUEST');
    case 'ERR_JOSE_NOT_SUPPORTED':
      return fail('jwt_header');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
    case 'ERR_JWK_INVALID':
      return new BrokerError('ERR_UNAVAILABLE', 'jwks_unavailable', err.message, { cause: err });
    default:
      return fail('jwt_invalid');
  }
}
