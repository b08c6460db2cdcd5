// The action's side of the broker's HTTP contract (src/shared/api.ts): exchange, renew, revoke.
// Responses are checked before use, refusals keep the broker's code/message/requestId so the job log
// says why, and nothing that could carry a credential (headers, request or response bodies) ever
// ends up in an error message.
import {
  EXCHANGE_PATH,
  GRANTS_PATH,
  type ErrorResponse,
  type ExchangeRequest,
  renewPath,
  type ExchangeResponse,
  type RenewRequest,
  type RenewResponse,
  type RevokeResponse,
} from '../shared/api.js';
import {
  MAX_TTL_SECONDS,
  isCallerReason,
  isDnsLabel,
  isDnsSubdomain,
  isErrorCode,
  type ErrorCode,
  type Reason,
} from '../shared/contract.js';
import { HTTP_STATUS } from '../shared/errors.js';
import { NetworkError, type HttpResponse, type HttpTransport } from './http-types.js';
import { parseRetryAfter, type RetryDecision } from './retry.js';

/** The broker answered with a non-2xx status. */
export class BrokerRefusal extends Error {
  readonly status: number;
  readonly code: ErrorCode | undefined;
  readonly brokerMessage: string | undefined;
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;
  /** Why, when the broker says (explainRefusals); one of CALLER_REASONS. */
  readonly reason: Reason | undefined;
  /** With reason ttl_exceeds_rule: the longest ttl the rules allowing this request permit. */
  readonly maxTtlSeconds: number | undefined;

  constructor(
    operation: string,
    status: number,
    details: {
      code?: ErrorCode;
      message?: string;
      requestId?: string;
      retryAfterMs?: number;
      reason?: Reason;
      maxTtlSeconds?: number;
    },
  ) {
    const parts = [
      details.code,
      details.reason,
      `HTTP ${status}`,
      details.requestId && `request id ${details.requestId}`,
    ];
    super(
      `broker refused the ${operation}: ${details.message ?? 'no reason given'} (${parts.filter(Boolean).join(', ')})`,
    );
    this.name = 'BrokerRefusal';
    this.status = status;
    this.code = details.code;
    this.brokerMessage = details.message;
    this.requestId = details.requestId;
    this.retryAfterMs = details.retryAfterMs;
    this.reason = details.reason;
    this.maxTtlSeconds = details.maxTtlSeconds;
  }

  /**
   * Whether the broker itself answered: its JSON error with a code that belongs to this status.
   * A proxy's or an ingress's page (HTML, or JSON of another shape) is not the broker's word.
   */
  get fromBroker(): boolean {
    return this.code !== undefined && HTTP_STATUS[this.code] === this.status;
  }
}

/** A 2xx answer that does not match the contract: a wrong URL or an incompatible broker. */
export class BrokerProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerProtocolError';
  }
}

/** Retry network failures, 5xx and 429 (honouring Retry-After); never other 4xx or protocol errors. */
export function classifyBrokerError(err: unknown): RetryDecision {
  if (err instanceof NetworkError) return { retry: true };
  if (err instanceof BrokerRefusal && (err.status >= 500 || err.status === 429))
    return { retry: true, afterMs: err.retryAfterMs };
  return { retry: false };
}

export interface BrokerClient {
  exchange(jwt: string, request: ExchangeRequest): Promise<ExchangeResponse>;
  revoke(grantId: string, token: string): Promise<RevokeResponse>;
  /** `jwt`: a fresh GitHub OIDC JWT of the same run; `request.grantToken`: the grant's current token. */
  renew(grantId: string, jwt: string, request: RenewRequest): Promise<RenewResponse>;
}

export interface BrokerClientOptions {
  baseUrl: URL;
  transport: HttpTransport;
  now: () => number;
  /** Per-request timeout; the retry deadline bounds the whole operation. */
  timeoutMs?: number;
}

export function createBrokerClient(options: BrokerClientOptions): BrokerClient {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const endpoint = (path: string): URL => {
    // Keep any path prefix the broker is mounted under (https://host/k8s-access/ + v1/exchange).
    const base = options.baseUrl.href.endsWith('/') ? options.baseUrl.href : `${options.baseUrl.href}/`;
    return new URL(path.replace(/^\//, ''), base);
  };

  return {
    async exchange(jwt, request) {
      const res = await options.transport({
        method: 'POST',
        url: endpoint(EXCHANGE_PATH),
        headers: {
          authorization: `Bearer ${jwt}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify(request),
        timeoutMs,
      });
      if (res.status < 200 || res.status > 299) throw refusal('exchange', res, options.now());
      return parseExchangeResponse(res.body);
    },

    async renew(grantId, jwt, request) {
      const res = await options.transport({
        method: 'POST',
        url: endpoint(renewPath(grantId)),
        headers: {
          authorization: `Bearer ${jwt}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify(request),
        timeoutMs,
      });
      if (res.status < 200 || res.status > 299) throw refusal('renewal', res, options.now());
      return parseRenewResponse(res.body, grantId);
    },

    async revoke(grantId, token) {
      const res = await options.transport({
        method: 'DELETE',
        url: endpoint(`${GRANTS_PATH}/${encodeURIComponent(grantId)}`),
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        timeoutMs,
      });
      if (res.status < 200 || res.status > 299) throw refusal('revocation', res, options.now());
      const body = parseJson(res.body) as Partial<RevokeResponse> | undefined;
      const usage = body?.usage;
      const unavailable = body?.usageUnavailable;
      return {
        grantId: typeof body?.grantId === 'string' ? body.grantId : grantId,
        revoked: body?.revoked !== false,
        // Rendered into the job summary, every value escaped there.
        ...(typeof usage === 'object' && usage !== null && typeof usage.calls === 'number' ? { usage } : {}),
        ...(unavailable === 'no-audit-log' || unavailable === 'audit-log-unreadable'
          ? { usageUnavailable: unavailable }
          : {}),
      };
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

// Only short, printable strings from the error body are shown: a proxy's HTML error page is not.
const printable = (v: unknown, max: number): string | undefined =>
  typeof v === 'string' && v.length > 0 && v.length <= max && /^[\x20-\x7e]+$/.test(v) ? v : undefined;

function refusal(operation: string, res: HttpResponse, now: number): BrokerRefusal {
  const body = parseJson(res.body) as Partial<ErrorResponse> | undefined;
  const e = body && typeof body === 'object' ? body.error : undefined;
  const code = isErrorCode(e?.code) ? e.code : undefined;
  const retryAfterHeader = res.headers['retry-after'];
  const max = e?.maxTtlSeconds;
  return new BrokerRefusal(operation, res.status, {
    code,
    reason: isCallerReason(e?.reason) ? e.reason : undefined,
    maxTtlSeconds:
      e?.reason === 'ttl_exceeds_rule' && Number.isSafeInteger(max) && max! > 0 && max! <= MAX_TTL_SECONDS
        ? max
        : undefined,
    message: printable(e?.message, 300),
    requestId: printable(e?.requestId, 100),
    retryAfterMs: parseRetryAfter(
      Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader,
      now,
    ),
  });
}

/** The renewal answer, checked like the exchange's: the plugin hands the token straight to kubectl. */
export function parseRenewResponse(text: string, grantId: string): RenewResponse {
  const body = parseJson(text);
  if (!body || typeof body !== 'object')
    throw new BrokerProtocolError('broker answered the renewal with a body that is not JSON');
  const r = body as Record<string, unknown>;
  const bad = (field: string, why: string) =>
    new BrokerProtocolError(`broker renewal response: "${field}" ${why}`);
  if (r.grantId !== grantId) throw bad('grantId', 'is not the grant that was renewed');
  const token = r.token;
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token))
    throw bad('token', 'is missing or contains characters a bearer token cannot have');
  const times = {} as Record<'tokenExpiresAt' | 'expiresAt' | 'sessionEndsAt', string>;
  for (const field of ['tokenExpiresAt', 'expiresAt', 'sessionEndsAt'] as const) {
    const v = r[field];
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw bad(field, 'is not a timestamp');
    times[field] = v;
  }
  return { grantId, token, ...times, newToken: r.newToken === true };
}

/** Checks every field the action relies on, so a bad answer fails here and not inside kubectl. */
export function parseExchangeResponse(text: string): ExchangeResponse {
  const body = parseJson(text);
  if (!body || typeof body !== 'object')
    throw new BrokerProtocolError('broker answered the exchange with a body that is not JSON');
  const r = body as Record<string, unknown>;
  const bad = (field: string, why: string) =>
    new BrokerProtocolError(`broker exchange response: "${field}" ${why}; is broker-url the right URL?`);
  const str = (field: string): string => {
    const v = r[field];
    if (typeof v !== 'string' || v === '') throw bad(field, 'is missing');
    return v;
  };

  const grantId = str('grantId');
  if (!isDnsSubdomain(grantId)) throw bad('grantId', 'is not a Kubernetes object name');
  const token = str('token');
  // A bearer token goes into a header and a YAML file: no whitespace or control characters.
  if (!/^[\x21-\x7e]+$/.test(token)) throw bad('token', 'contains characters a bearer token cannot have');
  const namespace = str('namespace');
  if (!isDnsLabel(namespace)) throw bad('namespace', 'is not a namespace name');
  const serviceAccount = str('serviceAccount');
  if (!isDnsSubdomain(serviceAccount)) throw bad('serviceAccount', 'is not a ServiceAccount name');
  const server = str('server');
  let serverUrl: URL;
  try {
    serverUrl = new URL(server);
  } catch {
    throw bad('server', 'is not a URL');
  }
  if (serverUrl.protocol !== 'https:') throw bad('server', 'is not an https:// URL');
  // Empty when the server (a broker gateway) has a publicly trusted certificate.
  const certificateAuthorityData = r.certificateAuthorityData;
  if (typeof certificateAuthorityData !== 'string') throw bad('certificateAuthorityData', 'is missing');
  if (!/^([A-Za-z0-9+/]+=*)?$/.test(certificateAuthorityData))
    throw bad('certificateAuthorityData', 'is not base64');
  const expiresAt = str('expiresAt');
  const tokenExpiresAt = str('tokenExpiresAt');
  for (const [field, v] of [
    ['expiresAt', expiresAt],
    ['tokenExpiresAt', tokenExpiresAt],
  ] as const)
    if (Number.isNaN(Date.parse(v))) throw bad(field, 'is not a timestamp');
  const role = str('role');
  const rules = Array.isArray(r.rules) ? (r.rules as ExchangeResponse['rules']) : [];
  // Absent from brokers that predate it: those are direct mode.
  if (r.mode !== undefined && r.mode !== 'direct' && r.mode !== 'gateway')
    throw bad('mode', 'is neither "direct" nor "gateway"');
  const mode = r.mode === 'gateway' ? 'gateway' : 'direct';

  return {
    grantId,
    token,
    tokenExpiresAt,
    expiresAt,
    server,
    certificateAuthorityData,
    namespace,
    serviceAccount,
    role,
    mode,
    rules,
  };
}
