// Audit events: one JSON line per exchange, renewal, denial, revocation, reaping and gateway call, on stdout (diagnostic
// logs go to stderr). Each line joins the GitHub run to the Kubernetes identity and to the issued
// token's credential id, which the apiserver's audit log records on every request made with it.
// Never a token: only its credential id.
import type { Reason } from '../shared/contract.js';
import type { VerifiedClaims } from './types.js';
import { unverifiedJwtPayload } from './unverified-jwt.js';
import { escapeUnsafeText } from './unsafe-text.js';

export type AuditAction = 'exchange' | 'renewal' | 'denial' | 'revocation' | 'reap' | 'gateway';

/** The run claims an audit line carries; absent when the caller was never authenticated. */
const RUN_CLAIMS = [
  'iss',
  'repository',
  'repository_id',
  'repository_owner_id',
  'run_id',
  'run_attempt',
  'workflow',
  'job_workflow_ref',
  'sha',
  'actor',
  'event_name',
  'ref',
  'environment',
  'runner_environment',
  'jti',
] as const;

export interface AuditEvent {
  action: AuditAction;
  requestId?: string;
  claims?: Partial<VerifiedClaims>;
  /** Why a request was denied or a revocation/reap failed (a BrokerError reason). */
  reason?: Reason;
  grantId?: string;
  namespace?: string;
  serviceAccount?: string;
  serviceAccountUid?: string;
  role?: string;
  policyRule?: string;
  /** `JTI=<uuid>`, as the apiserver logs it in user.extra["authentication.kubernetes.io/credential-id"]. */
  credentialId?: string;
  expiresAt?: string;
  tokenExpiresAt?: string;
  /** Who revoked: 'grant-token', 'github-oidc' or 'reaper'. */
  by?: string;
  /** Exchange: the client address the policy saw ('unknown' when none could be told). */
  clientAddress?: string;
  /** Exchange: the trusted proxy the request came through, when clientAddress came from it. */
  proxyAddress?: string;
  [field: string]: unknown;
}

export interface AuditLog {
  record(event: AuditEvent): void;
}

export function createAuditLog(
  write: (line: string) => void = (line) => void process.stdout.write(line),
  now: () => number = Date.now,
): AuditLog {
  return {
    record(event) {
      const { claims, ...rest } = event;
      const github: Record<string, unknown> = {};
      for (const c of RUN_CLAIMS) if (claims?.[c] !== undefined) github[c] = claims[c];
      const line = { type: 'audit', time: new Date(now()).toISOString(), ...rest, github };
      write(`${escapeUnsafeText(JSON.stringify(line))}\n`);
    },
  };
}

/**
 * The credential id of a Kubernetes service-account token (`JTI=<jti>`), read from its payload.
 * No verification: the broker just received the token from the API server.
 */
export function credentialIdOf(token: string): string | undefined {
  const jti = unverifiedJwtPayload(token)?.jti;
  return typeof jti === 'string' ? `JTI=${jti}` : undefined;
}
