// Prometheus metrics on a registry of the broker's own (never the global one), served at /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface BrokerMetrics {
  registry: Registry;
  exchanges: Counter<'result'>;
  denials: Counter<'reason'>;
  exchangeSeconds: Histogram<'result'>;
  activeGrants: Gauge;
  reaped: Counter;
  reapFailures: Counter;
  reapNamespaceFailures: Counter<'namespace'>;
  forgedGrants: Gauge;
  revocations: Counter<'by'>;
  renewals: Counter<'result'>;
  renewalSeconds: Histogram<'result'>;
  rateLimited: Counter;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): BrokerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'k8s_ea_broker_' });
  const registers = [registry];
  return {
    registry,
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
  };
}
