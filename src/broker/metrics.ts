// Prometheus metrics on a registry of the broker's own (never the global one), served at /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface BrokerMetrics {
  registry: Registry;
  exchanges: Counter<'result'>;
  denials: Counter<'reason'>;
  failures: Counter<'reason'>;
  exchangeSeconds: Histogram<'result'>;
  activeGrants: Gauge;
  reaped: Counter;
  reapFailures: Counter;
  reapNamespaceFailures: Counter<'namespace'>;
  forgedGrants: Gauge;
  expiredGrants: Gauge;
  reaperLastPass: Gauge;
  revocations: Counter<'by'>;
  renewals: Counter<'result'>;
  renewalSeconds: Histogram<'result'>;
  rateLimited: Counter;
  policyReloadFailures: Counter;
  policyLoadedTimestamp: Gauge;
  policyInfo: Gauge<'sha256'>;
  gatewayRequests: Counter<'result'>;
  gatewayRefusals: Counter<'reason'>;
  gatewaySeconds: Histogram<'verb'>;
  gatewayOpenStreams: Gauge;
  gatewayCutStreams: Counter;
  gatewayShadowWouldDeny: Counter<'rule' | 'role'>;
  gatewayUpstreamQueued: Gauge<'lane'>;
  clusterServerInCluster: Gauge;
  selfRevokeShared: Gauge;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'k8s_ea_broker_' });
  const registers = [registry];
  return {
    registry,
    ...grantMetrics(registers),
    ...reaperMetrics(registers),
    ...policyMetrics(registers),
    ...gatewayMetrics(registers),
  };
}

/** The exchange, renewal and revocation routes, and what they hand out. */
function grantMetrics(registers: Registry[]) {
  return {
    exchanges: new Counter({
      name: 'k8s_ea_exchanges_total',
      help: 'Token exchanges by result (granted, denied, error)',
      labelNames: ['result'],
      registers,
    }),
    denials: new Counter({
      name: 'k8s_ea_denials_total',
      help: 'Refused requests by reason',
      labelNames: ['reason'],
      registers,
    }),
    failures: new Counter({
      name: 'k8s_ea_exchange_failures_total',
      help: 'Exchanges that failed on the broker or cluster side (result="error"), by reason, e.g. jwks_unavailable',
      labelNames: ['reason'],
      registers,
    }),
    exchangeSeconds: new Histogram({
      name: 'k8s_ea_exchange_duration_seconds',
      help: 'Time to answer an exchange request',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    activeGrants: new Gauge({
      name: 'k8s_ea_active_grants',
      help: 'Grants present in the managed namespaces at the last reaper pass',
      registers,
    }),
    revocations: new Counter({
      name: 'k8s_ea_revocations_total',
      help: 'Grants revoked on request, by how the caller authenticated',
      labelNames: ['by'],
      registers,
    }),
    renewals: new Counter({
      name: 'k8s_ea_renewals_total',
      help: 'Grant renewals by result (renewed, unchanged, denied, error)',
      labelNames: ['result'],
      registers,
    }),
    renewalSeconds: new Histogram({
      name: 'k8s_ea_renewal_duration_seconds',
      help: 'Time to answer a renewal request',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    rateLimited: new Counter({
      name: 'k8s_ea_rate_limited_total',
      help: 'Requests refused by the per-repository rate limit',
      registers,
    }),
    clusterServerInCluster: new Gauge({
      name: 'k8s_ea_cluster_server_in_cluster',
      help: 'The API server address handed to runners is an in-cluster one (1: see the start-up warning)',
      registers,
    }),
    selfRevokeShared: new Gauge({
      name: 'k8s_ea_self_revoke_shared',
      help: 'Direct mode: 1 while new grants bind the shared self-revoke Role (its admission guard verified), 0 while they get the per-grant pair',
      registers,
    }),
  };
}

/** The reaper: what it deleted, what it could not, and when it last ran. */
function reaperMetrics(registers: Registry[]) {
  return {
    reaped: new Counter({ name: 'k8s_ea_reaped_grants_total', help: 'Grants deleted at expiry', registers }),
    reapFailures: new Counter({
      name: 'k8s_ea_reap_failures_total',
      help: 'Failed attempts to delete an expired grant (retried)',
      registers,
    }),
    reapNamespaceFailures: new Counter({
      name: 'k8s_ea_reap_namespace_failures_total',
      help: 'Reaper passes that could not list a namespace (the pass goes on with the others)',
      labelNames: ['namespace'],
      registers,
    }),
    forgedGrants: new Gauge({
      name: 'k8s_ea_forged_grants',
      help: 'ServiceAccounts labelled as grants that are not grants of this broker, at the last reaper pass',
      registers,
    }),
    expiredGrants: new Gauge({
      name: 'k8s_ea_expired_grants',
      help: 'Grants past their expiry still present after the last reaper pass (deletion failed or backing off)',
      registers,
    }),
    reaperLastPass: new Gauge({
      name: 'k8s_ea_reaper_last_pass_timestamp_seconds',
      help: 'When this replica last completed a reaper pass as the Lease holder (Unix time)',
      registers,
    }),
  };
}

/** The running policy and its reloads. */
function policyMetrics(registers: Registry[]) {
  return {
    policyReloadFailures: new Counter({
      name: 'k8s_ea_policy_reload_failures_total',
      help: 'Changed policy files refused (invalid, a role missing or dangerous); the running policy stayed',
      registers,
    }),
    policyLoadedTimestamp: new Gauge({
      name: 'k8s_ea_policy_loaded_timestamp_seconds',
      help: 'When the running policy was loaded (Unix time)',
      registers,
    }),
    policyInfo: new Gauge({
      name: 'k8s_ea_policy_info',
      help: 'The running policy: 1 for the SHA-256 of its file',
      labelNames: ['sha256'],
      registers,
    }),
  };
}

/** The gateway: its calls, refusals and connections. */
function gatewayMetrics(registers: Registry[]) {
  return {
    gatewayRequests: new Counter({
      name: 'k8s_ea_gateway_requests_total',
      help: 'Gateway requests by result (forwarded, refused, failed)',
      labelNames: ['result'],
      registers,
    }),
    gatewayRefusals: new Counter({
      name: 'k8s_ea_gateway_refusals_total',
      help: 'Gateway requests refused before reaching the API server, by reason',
      labelNames: ['reason'],
      registers,
    }),
    gatewaySeconds: new Histogram({
      name: 'k8s_ea_gateway_request_duration_seconds',
      help: 'Time from a forwarded request to the end of its answer, by Kubernetes verb (watches included)',
      labelNames: ['verb'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300],
      registers,
    }),
    gatewayOpenStreams: new Gauge({
      name: 'k8s_ea_gateway_open_requests',
      help: 'Forwarded requests whose answer is still streaming (watches, logs, large lists)',
      registers,
    }),
    gatewayCutStreams: new Counter({
      name: 'k8s_ea_gateway_cut_requests_total',
      help: 'Open forwarded requests closed because their grant was revoked or expired',
      registers,
    }),
    gatewayShadowWouldDeny: new Counter({
      name: 'k8s_ea_gateway_shadow_would_deny_total',
      help: "Forwarded calls the API server allowed and the policy rule's shadowRole would have denied, by rule and shadow role",
      labelNames: ['rule', 'role'],
      registers,
    }),
    gatewayUpstreamQueued: new Gauge({
      name: 'k8s_ea_gateway_upstream_queued',
      help: 'Gateway calls waiting for a connection to the API server, by lane (short, long)',
      labelNames: ['lane'],
      registers,
    }),
  };
}
