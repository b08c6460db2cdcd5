// The shape of the broker's configuration and its defaults: what the config file may say
// (docs/configuration.md documents each key) and what the runtime, the gateway and the routes are
// given. The config owns this shape; the parts it configures import it from here.
import { DEFAULT_AUDIENCE } from '../../shared/api.js';
import type { EdgeTunnelConfig } from './edge-section.js';
import { GITHUB_ISSUER, type IssuerConfig } from '../auth/issuer-url.js';
import { DEFAULT_LEEWAY_SECONDS } from '../auth/token-verifier.js';
import { DEFAULT_BROKER_NAMESPACE } from '../policy/job-namespaces.js';

/** The request limits (the config fills every one; tests may leave the revocation rate to its default). */
export interface BrokerLimits {
  bodyBytes: number;
  requestTimeoutMs: number;
  perRepositoryPerMinute: number;
  revocationsPerMinute?: number;
}

/** The gateway's fairness settings (`gateway.limits`; gateway/fairness.ts applies them). */
export interface GatewayLimits {
  /** Short calls one grant may have in flight (or waiting for a connection) at once. */
  requestsPerGrant: number;
  /** Long-running calls (watches, log streams) one grant may hold at once. */
  longRunningPerGrant: number;
  /** The same two caps over all grants of one repository (its `repository_id`). */
  requestsPerRepository: number;
  longRunningPerRepository: number;
  /** Connections to the API server for short calls; long-running calls never use them. */
  upstreamConnections: number;
  /** Connections to the API server for long-running calls. */
  longRunningConnections: number;
  /** How long a call may wait for a free connection before it is answered 503. */
  upstreamWaitMs: number;
}

/** The config of the gateway (the `gateway` section, with `tls` already defaulted). */
export interface GatewayConfig {
  listen: { host: string; port: number };
  /** The server URL jobs receive. */
  url: string;
  /** Absent only when the broker itself serves plain HTTP behind a TLS-terminating proxy. */
  tls?: { certFile: string; keyFile: string };
  /** PEM CA jobs receive for the gateway's certificate; absent: the public roots. */
  caFile?: string;
  /** Fairness caps and the upstream wait; GATEWAY_LIMIT_DEFAULTS when absent. */
  limits?: GatewayLimits;
}

/** The API server's audit log, for the direct-mode job summary (the `auditLog` section). */
export interface AuditLogConfig {
  /** Absolute path of the file the API server writes (or a copy kept current). */
  file: string;
  /** The most a revocation reads of it, from the end back to the grant's start. */
  maxReadBytes: number;
}

export const AUDIT_LOG_MAX_READ_MIB = 64;

export interface BrokerConfig {
  /** Absolute path of the file this was read from. */
  configFile: string;
  listen: { host: string; port: number };
  /** Metrics, health and readiness, plain HTTP, never on the public listener. */
  internalListen: { host: string; port: number };
  /** Serve plain HTTP (behind a TLS-terminating proxy, or in tests). Never implied. */
  insecureHttp: boolean;
  /** Absent exactly when insecureHttp is true. */
  tls: { certFile: string; keyFile: string } | undefined;
  issuers: IssuerConfig[];
  audience: string;
  leewaySeconds: number;
  /** Absolute path. */
  policyFile: string;
  /** Absolute path; undefined means in-cluster configuration. */
  kubeconfig: string | undefined;
  /** Namespace of the broker itself (its reaper Lease lives there). */
  brokerNamespace: string;
  reaper: { intervalSeconds: number; leaseName: string };
  limits: Required<BrokerLimits>;
  shutdownGraceMs: number;
  /** API server URL handed to jobs, when it differs from the one the broker itself uses. */
  clusterServer: string | undefined;
  /** CA bundle (PEM) handed to jobs with clusterServer; absolute path. */
  clusterCaFile: string | undefined;
  /** Peers whose X-Forwarded-For names the client (canonical CIDRs); empty: none. */
  trustedProxies: readonly string[];
  /** Send callers the reason of a refusal, for the reasons in CALLER_REASONS only. */
  explainRefusals: boolean;
  /** Gateway mode when present (docs/configuration.md); `tls` defaults to the broker's. */
  gateway: GatewayConfig | undefined;
  /** Edge mode when present: the replica dials the edges and serves runners through them. */
  edge: EdgeTunnelConfig | undefined;
  /**
   * False (edge-only mode, only with `edge`): the broker and its gateway bind no port at all and
   * serve only the streams the edges' tunnels hand them; the internal listener stays.
   */
  publicListeners: boolean;
  /** Direct mode: where the job summary's calls are read from; none: the summary says unavailable. */
  auditLog: AuditLogConfig | undefined;
}

/**
 * The revoke route's limit, for the whole route (its callers are not authenticated yet): room for
 * every job's post step; beyond it 429, and the post step then revokes at the API server directly.
 */
export const DEFAULT_REVOCATIONS_PER_MINUTE = 600;

export const GATEWAY_LIMIT_DEFAULTS: Readonly<GatewayLimits> = Object.freeze({
  // kubectl's discovery and Helm's parallel reads stay well under these; a flood does not.
  requestsPerGrant: 64,
  longRunningPerGrant: 16,
  requestsPerRepository: 256,
  longRunningPerRepository: 64,
  upstreamConnections: 512,
  longRunningConnections: 2_048,
  upstreamWaitMs: 5_000,
});

export const CONFIG_DEFAULTS = deepFreeze({
  listen: { host: '0.0.0.0', port: 8443 },
  internalListen: { host: '127.0.0.1', port: 9090 },
  gatewayListen: { host: '0.0.0.0', port: 8444 },
  issuers: [GITHUB_ISSUER],
  audience: DEFAULT_AUDIENCE,
  leewaySeconds: DEFAULT_LEEWAY_SECONDS,
  brokerNamespace: DEFAULT_BROKER_NAMESPACE,
  reaper: { intervalSeconds: 15, leaseName: 'k8s-ephemeral-access-reaper' },
  limits: {
    bodyBytes: 16_384,
    requestTimeoutMs: 10_000,
    perRepositoryPerMinute: 30,
    revocationsPerMinute: DEFAULT_REVOCATIONS_PER_MINUTE,
  },
  shutdownGraceMs: 10_000,
});

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
