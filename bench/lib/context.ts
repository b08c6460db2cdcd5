// Everything the scenarios share: the real control plane, fresh namespaces, the broker's RBAC from
// deploy/ (and the minimal floor client under that same identity), the local OIDC issuer, and a
// way to start the real broker bundle with a policy that allows many exchanges.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningBroker } from '../../test/support/broker.js';
import { ensureBrokerBuilt } from '../../test/support/ensure-built.js';
import type { BrokerRbac } from '../../test/support/deploy-rbac.js';
import { startBrokerEnv } from '../../test/support/fixture.js';
import { ensureActionBuilt, type JobOptions, type RunnerJob } from '../../test/support/runner.js';
import type { OidcIssuer } from '../../test/support/oidc-issuer.js';
import { policyYaml, type PolicySpec } from '../../test/support/policy.js';
import type { ExchangeRequest } from '../../src/shared/api.js';
import { INLINE_ROLE_PART, PART_LABEL, SELF_REVOKE_ROLE_PART } from '../../src/broker/naming.js';
import type { BenchSettings } from './settings.js';
import { BenchBrokerClient } from './broker-client.js';
import { credentialsFromKubeconfig, MinimalKubeClient } from './kube-client.js';
import {
  benchClaims,
  floorGrant,
  type FloorGrant,
  type FloorShape,
  type GrantTarget,
} from './grant-floor.js';

/**
 * Repository IDs the bench's JWTs rotate through, each allowed by its own policy rule. With the
 * per-repository limit at its maximum (10,000/min) no run comes near it.
 */
export const REPOSITORY_IDS = Array.from({ length: 8 }, (_, i) => String(700_000_001 + i));
export const RATE_LIMIT_PER_REPOSITORY = 10_000;
export const CLUSTER_ROLE = 'k8s-ea-deployer';
export const ROLE = 'deployer';
/**
 * An inline role (its Role shared per namespace, src/broker/grants/inline-roles.ts) for the inline
 * exchange figure. Its rules are permissions the broker holds itself in job namespaces (deploy/), as
 * escalation prevention requires; what they allow does not change the cost of a grant.
 */
export const INLINE_ROLE = 'inline-reader';
const INLINE_RULES = [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list'] }];
export const TTL_SECONDS = 900;
/** How many namespaces the growth scenario spreads its live grants over. */
export const GROWTH_SPREAD = 10;
/**
 * Shadow mode's cost (scenarios/gateway-shadow.ts): the rule of the last bench repository names
 * this inline role as its shadowRole when a broker is started with `shadowRole`. Deployer's reads,
 * ConfigMaps last, so the evaluator walks every rule before the one that allows the bench's GET
 * (the steady state the issue cares about: zero would-deny).
 */
export const SHADOW_ROLE = 'shadow-reader';
export const SHADOW_REPOSITORY_ID = REPOSITORY_IDS[REPOSITORY_IDS.length - 1]!;
export const SHADOW_RULES = [
  { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['pods', 'pods/log', 'events'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch'] },
];
/** BENCH_PROFILE=1 runs every broker under --cpu-prof through this wrapper. */
const PROFILED_ENTRY = fileURLToPath(new URL('./profiled-broker.mjs', import.meta.url));

export interface BenchContext {
  issuer: OidcIssuer;
  rbac: BrokerRbac;
  namespaces: {
    exchange: string;
    reap: string;
    scale: string;
    /** The growth scenario's: one namespace for every live grant, and ten to spread them over. */
    growth: { single: string; spread: string[] };
  };
  /** Admin, for cleanup and for watching deletions. */
  adminKube: MinimalKubeClient;
  /** The control plane's API server process (with its etcd; the controller-manager is a child). */
  apiServerPid: number;
  target(namespace: string): GrantTarget;
  /** A grant made the floor's way (no broker) for the first bench repository; expiry: its TTL. */
  floorGrant(target: GrantTarget, shape: FloorShape, expiresAt?: Date): Promise<FloorGrant>;
  /** The exchange request for ROLE (or another role of the bench policy, e.g. INLINE_ROLE). */
  exchangeBody(namespace: string, role?: string): ExchangeRequest;
  /** Runs `fn` for i = first … end-1, one at a time, each with a fresh runner job (cleaned up after). */
  forEachJob(
    first: number,
    end: number,
    fn: (job: RunnerJob, i: number) => Promise<void>,
    options?: JobOptions,
  ): Promise<void>;
  /** The action's inputs for a job asking this broker for ROLE in `namespace`. */
  actionInputs(bb: BenchBroker, namespace: string): Record<string, string>;
  /** Signs `count` fresh JWTs (jti single use) before any timing starts. */
  presign(count: number): Promise<string[]>;
  /**
   * With `gateway`, the broker also runs its gateway (BenchBroker.gatewayUrl; jobs are sent there).
   * With `inlineRole`, its policy also grants INLINE_ROLE, whose shared Role it then keeps in each
   * namespace (other scenarios count the managed Roles there). With `shadowRole`, the rule of
   * SHADOW_REPOSITORY_ID names SHADOW_ROLE as its shadowRole. With `profiled` (or BENCH_PROFILE=1)
   * it runs under --cpu-prof (bench/lib/profiled-broker.mjs).
   */
  startBroker(
    namespaces: string[],
    opts?: {
      reaperIntervalSeconds?: number;
      gateway?: boolean;
      inlineRole?: boolean;
      /** Its certificate (and the CA that verifies it) instead of a throwaway one. */
      tls?: { certFile: string; keyFile: string; ca: Buffer };
      /** More config sections (e.g. `edge`). */
      config?: Record<string, unknown>;
      shadowRole?: boolean;
      profiled?: boolean;
    },
  ): Promise<BenchBroker>;
  /** Deletes every grant object in a namespace and every JWT-use record, between runs. */
  clearGrants(namespace: string): Promise<void>;
  close(): Promise<void>;
}

/** A scenario: runs against the shared context and returns its results. */
export type Scenario<R, Extra extends unknown[] = []> = (
  ctx: BenchContext,
  settings: BenchSettings,
  log: (msg: string) => void,
  ...extra: Extra
) => Promise<R>;

export interface BenchBroker {
  broker: RunningBroker;
  client: BenchBrokerClient;
  ca: Buffer;
  /** Gateway mode only; its certificate is the broker's (`ca` verifies it). */
  gatewayUrl?: string;
  pid: number;
  stop(): Promise<void>;
}

/** One rule per repository ID, all granting ROLE (and INLINE_ROLE if asked) in these namespaces. */
function benchPolicy(namespaces: string[], inlineRole = false, shadowRole = false): PolicySpec {
  return {
    namespaces,
    roles: {
      [ROLE]: { clusterRole: CLUSTER_ROLE },
      ...(inlineRole && { [INLINE_ROLE]: { rules: INLINE_RULES } }),
      ...(shadowRole && { [SHADOW_ROLE]: { rules: SHADOW_RULES } }),
    },
    rules: REPOSITORY_IDS.map((id) => ({
      name: `bench-${id}`,
      match: { repository_id: id },
      roles: inlineRole ? [ROLE, INLINE_ROLE] : [ROLE],
      maxTtlSeconds: TTL_SECONDS,
      // Renewable, for the credential plugin's renewal latency (scenarios/credential.ts).
      maxSessionSeconds: 2 * TTL_SECONDS,
      ...(shadowRole && id === SHADOW_REPOSITORY_ID && { shadowRole: SHADOW_ROLE }),
    })),
  };
}

export async function createBenchContext(log: (msg: string) => void): Promise<BenchContext> {
  // A plain-JS script without type declarations, so imported by URL and typed here.
  const cluster = (await import(new URL('../../scripts/cluster.mjs', import.meta.url).href)) as {
    up(o: { quiet: boolean }): Promise<{ kubeconfig: string; auditLog: string; server: string; dir: string }>;
  };
  const info = await cluster.up({ quiet: true });
  process.env.K8S_EA_ADMIN_KUBECONFIG = info.kubeconfig;
  process.env.K8S_EA_AUDIT_LOG = info.auditLog;
  process.env.K8S_EA_SERVER = info.server;
  log(`control plane at ${info.server}; building bundles if stale`);
  await ensureActionBuilt();
  await ensureBrokerBuilt();

  const growthSpread = Array.from({ length: GROWTH_SPREAD }, (_, i) => `bench-growth-s${i}`);
  const env = await startBrokerEnv({
    namespaces: ['bench-exchange', 'bench-reap', 'bench-scale', 'bench-growth', ...growthSpread],
    rbac: { tokenSeconds: 7200, inlineRoles: [INLINE_ROLE] },
  });
  const { issuer, rbac } = env;
  const [exchangeNs, reapNs, scaleNs, growthNs, ...spreadNs] = env.namespaces;
  const namespaces = {
    exchange: exchangeNs!,
    reap: reapNs!,
    scale: scaleNs!,
    growth: { single: growthNs!, spread: spreadNs },
  };
  // Tokens the runner endpoint hands to the action's main step must match the bench policy too.
  issuer.claims.repository_id = REPOSITORY_IDS[0]!;
  // The floor's clients use the broker's own kubeconfig (same ServiceAccount, same RBAC), one per
  // shape: each shape's connections then sit idle between its batches as long as a broker's do
  // (both close an idle one after 30 s). One client for every shape was never idle that long while
  // the broker's connections were, so after a long pause only the broker opened new ones (finding 29).
  const floorKubes = new Map<FloorShape, MinimalKubeClient>();
  const floorKube = (shape: FloorShape) => {
    let kube = floorKubes.get(shape);
    if (!kube)
      floorKubes.set(shape, (kube = new MinimalKubeClient(credentialsFromKubeconfig(rbac.kubeconfigPath))));
    return kube;
  };
  const adminKube = new MinimalKubeClient(credentialsFromKubeconfig(info.kubeconfig));
  const brokers = new Set<BenchBroker>();
  let repo = 0;
  const nextRepository = () => REPOSITORY_IDS[repo++ % REPOSITORY_IDS.length]!;

  const ctx: BenchContext = {
    issuer,
    rbac,
    namespaces,
    adminKube,
    apiServerPid: Number(readFileSync(join(info.dir, 'pid'), 'utf8')),
    target: (namespace) => ({
      namespace,
      ledgerNamespace: rbac.brokerNamespace,
      clusterRole: CLUSTER_ROLE,
      role: ROLE,
      ruleName: `bench-${REPOSITORY_IDS[0]}`,
      ttlSeconds: TTL_SECONDS,
      issuer: issuer.issuer,
    }),
    floorGrant: (target, shape, expiresAt) =>
      floorGrant(floorKube(shape), target, benchClaims(issuer.issuer, REPOSITORY_IDS[0]!), shape, expiresAt),
    exchangeBody: (namespace, role = ROLE) => ({ namespace, role, ttlSeconds: TTL_SECONDS }),
    async forEachJob(first, end, fn, options) {
      for (let i = first; i < end; i += 1) {
        const job = env.newJob(options);
        try {
          await fn(job, i);
        } finally {
          job.cleanup();
        }
      }
    },
    actionInputs: (bb, namespace) =>
      env.actionInputs(bb.broker, { namespace, role: ROLE, ttl: String(TTL_SECONDS) }),
    async presign(count) {
      const out: string[] = [];
      for (let i = 0; i < count; i += 1) out.push(await issuer.sign({ repository_id: nextRepository() }));
      return out;
    },
    async startBroker(brokerNamespaces, opts = {}) {
      const broker = await env.startBroker({
        policyYaml: policyYaml(benchPolicy(brokerNamespaces, opts.inlineRole, opts.shadowRole)),
        namespaces: brokerNamespaces,
        reaperIntervalSeconds: opts.reaperIntervalSeconds ?? 15,
        entry: opts.profiled || process.env.BENCH_PROFILE === '1' ? PROFILED_ENTRY : undefined,
        gateway: opts.gateway,
        tls: opts.tls,
        config: {
          limits: {
            bodyBytes: 16384,
            requestTimeoutMs: 30_000,
            perRepositoryPerMinute: RATE_LIMIT_PER_REPOSITORY,
          },
          ...opts.config,
        },
      });
      const ca = broker.ca!;
      const client = new BenchBrokerClient(broker.url, ca);
      const b: BenchBroker = {
        broker,
        client,
        ca,
        gatewayUrl: broker.gatewayUrl,
        pid: broker.process.pid!,
        async stop() {
          brokers.delete(b);
          client.close();
          await broker.stop();
        },
      };
      brokers.add(b);
      return b;
    },
    async clearGrants(namespace) {
      // Not the shared Roles (an inline role's, the self-revoke one): they belong to no grant and
      // outlive them, as in a cluster.
      const sel = encodeURIComponent(
        `app.kubernetes.io/managed-by=k8s-ephemeral-access,${PART_LABEL} notin (${INLINE_ROLE_PART},${SELF_REVOKE_ROLE_PART})`,
      );
      const ns = encodeURIComponent(namespace);
      await Promise.all([
        adminKube.json('DELETE', `/api/v1/namespaces/${ns}/serviceaccounts?labelSelector=${sel}`),
        adminKube.json(
          'DELETE',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings?labelSelector=${sel}`,
        ),
        adminKube.json(
          'DELETE',
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles?labelSelector=${sel}`,
        ),
        adminKube.json(
          'DELETE',
          `/apis/coordination.k8s.io/v1/namespaces/${rbac.brokerNamespace}/leases?labelSelector=${encodeURIComponent(
            'k8s-ephemeral-access.io/jwt-ledger=true',
          )}`,
        ),
      ]);
    },
    async close() {
      for (const b of [...brokers]) await b.stop().catch(() => undefined);
      for (const kube of floorKubes.values()) kube.close();
      adminKube.close();
      // The namespace controller deletes everything inside in the background.
      await env.cleanup();
    },
  };
  return ctx;
}

/** Resident and peak memory of a process, from /proc (Linux), in MiB. */
export function processMemoryMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc (Linux). The kernel reports
 * it in USER_HZ ticks, 100 per second on every Linux the bench runs on.
 */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state is the first field, utime the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The same to the nanosecond, summed over the process's threads (each thread's schedstat): for
 * windows of tens of ms, where processCpuMs's 10 ms ticks would be most of the figure. Time of a
 * thread that has exited is not in it, so it is for processes whose threads live as long as they
 * do (Node's are started once), and for differences over a window.
 */
export function threadsCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return ns / 1e6;
}
