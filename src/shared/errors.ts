// Errors with stable codes (the jose model): code decides the HTTP status and the client message;
// the message and cause are for the log only.
import type { ErrorCode, Reason } from './contract.js';

export class BrokerError extends Error {
  readonly code: ErrorCode;
  /** A machine-readable reason for logs and metrics (e.g. 'jwt_expired'); never sent to clients. */
  readonly reason: Reason;
  /** ttl_exceeds_rule: the longest ttl the rules allowing this request permit (see ErrorResponse). */
  readonly maxTtlSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    reason: Reason,
    message?: string,
    options?: { cause?: unknown; maxTtlSeconds?: number },
  ) {
    super(message ?? reason, options);
    this.name = 'BrokerError';
    this.code = code;
    this.reason = reason;
    this.maxTtlSeconds = options?.maxTtlSeconds;
  }
}

/** Over the per-repository rate limit; the answer carries Retry-After. */
export class RateLimitedError extends BrokerError {
  /** Whole seconds until one more request would be allowed. */
  readonly retryAfterSeconds: number;

  constructor(retryAfterSeconds: number) {
    super('ERR_RATE_LIMITED', 'rate_limited');
    this.name = 'RateLimitedError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export const HTTP_STATUS: Record<ErrorCode, number> = {
  ERR_BAD_REQUEST: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_UNAVAILABLE: 503,
  ERR_INTERNAL: 500,
};

/** What a client is told: short and generic, so a refusal does not reveal which check failed. */
export const CLIENT_MESSAGE: Record<ErrorCode, string> = {
  ERR_BAD_REQUEST: 'malformed request',
  ERR_UNAUTHENTICATED: 'token rejected',
  ERR_FORBIDDEN: 'not allowed by the broker policy',
  ERR_NOT_FOUND: 'not found',
  ERR_PAYLOAD_TOO_LARGE: 'request body too large',
  ERR_RATE_LIMITED: 'too many requests; retry later',
  ERR_UNAVAILABLE: 'temporarily unavailable; retry later',
  ERR_INTERNAL: 'internal error',
};

/** A printable message for anything thrown; never includes request bodies or headers. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
