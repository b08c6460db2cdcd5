// Translates jose's failures into BrokerErrors by their stable `code` (never by message text). jose
// only resolves the issuer's key for a token now (issuer-keys.ts); the verifier checks the signature
// and the claims itself. Every token problem is "unauthenticated" with a precise reason for logs and
// metrics; the client only ever sees the generic CLIENT_MESSAGE.
import type { Reason } from '../../shared/contract.js';
import { BrokerError } from '../../shared/errors.js';

interface JoseLikeError {
  code: string;
  message: string;
}

function isJoseError(err: unknown): err is JoseLikeError {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_J');
}

export function toBrokerError(err: unknown): unknown {
  if (err instanceof BrokerError || !isJoseError(err)) return err;
  const fail = (reason: Reason) =>
    new BrokerError('ERR_UNAUTHENTICATED', reason, err.message, { cause: err });
  switch (err.code) {
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return fail('jwt_unknown_kid');
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
