// Named roles vetted like inline ones. A named ClusterRole or Role is whatever the cluster says it
// is today, so the broker reads every one its policy binds before it listens (and refuses to start
// if one is missing or dangerous), then keeps a watch on each. A grant is decided against the
// latest state seen, with no API call on the exchange path: a role edited to become dangerous is
// refused within the watch's latency, and granted again once it is fixed.
import type { V1ClusterRole, V1Role } from '@kubernetes/client-node';
import { BrokerError } from '../../shared/errors.js';
import { findDangerousRules } from '../policy/dangerous.js';
import type { Logger } from '../logger.js';
import type { Grantable, NamedRole, PolicyEngine } from '../types.js';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError, readIgnoringNotFound } from '../kube/errors.js';
import { OpenWatches, WATCH_SECONDS, growingPause } from '../kube/watches.js';
import { namedRoleOf } from './grant-kinds.js';

export type Verdict =
  | { state: 'safe' }
  | { state: 'dangerous' | 'missing'; problems: string[] }
  /** Not read since the last failure: grants wait for the next successful reading. */
  | { state: 'unverified'; problems: string[] };

const RBAC_PATH = '/apis/rbac.authorization.k8s.io/v1';

export const describeRole = (role: NamedRole): string =>
  role.kind === 'ClusterRole'
    ? `ClusterRole ${JSON.stringify(role.name)}`
    : `Role ${JSON.stringify(role.name)} in namespace ${JSON.stringify(role.namespace)}`;

const keyOf = (role: NamedRole): string =>
  role.kind === 'ClusterRole' ? `ClusterRole/${role.name}` : `Role/${role.namespace}/${role.name}`;

/** Why a role as read from the cluster may not be granted to jobs; empty when it may. */
export function roleProblems(role: V1ClusterRole | V1Role): string[] {
  const problems: string[] = [];
  if ('aggregationRule' in role && role.aggregationRule)
    problems.push(
      'has an aggregationRule: its rules are whatever any ClusterRole carrying the selected labels adds; ' +
        'bind a ClusterRole with explicit rules instead',
    );
  const rules = role.rules ?? [];
  rules.forEach((rule, index) => {
    if (rule.nonResourceURLs?.length)
      problems.push(`rules[${index}]: grants nonResourceURLs; a job role names namespaced resources only`);
  });
  const asWritten = rules.map((rule) => ({
    apiGroups: rule.apiGroups ?? [],
    resources: rule.resources ?? [],
    verbs: rule.verbs,
  }));
  problems.push(
    ...findDangerousRules(asWritten).map(
      (p) => `${p}; jobs may never be granted this (docs/policy.md, "Refused permissions")`,
    ),
  );
  return problems;
}

function verdictOf(role: V1ClusterRole | V1Role | undefined): Verdict {
  if (!role) return { state: 'missing', problems: ['does not exist'] };
  const problems = roleProblems(role);
  return problems.length === 0 ? { state: 'safe' } : { state: 'dangerous', problems };
}

export interface RoleVetting {
  /** The refusal for a grant of this named role now, or undefined when it may be granted. */
  refusal(grantable: Grantable): BrokerError | undefined;
  stop(): void;
}

/** One named role as read once from the cluster, and what that reading says. */
export interface RoleReading {
  role: NamedRole;
  object: V1ClusterRole | V1Role | undefined;
  verdict: Verdict;
}

async function readRole(
  k8s: Pick<K8sClients, 'rbac'>,
  role: NamedRole,
): Promise<V1ClusterRole | V1Role | undefined> {
  return readIgnoringNotFound(() =>
    role.kind === 'ClusterRole'
      ? k8s.rbac.readClusterRole({ name: role.name })
      : k8s.rbac.readNamespacedRole({ name: role.name, namespace: role.namespace }),
  );
}

/** Reads every named role once (what the broker does before it listens, and `policy check`). */
export async function readNamedRoles(
  k8s: Pick<K8sClients, 'rbac'>,
  roles: readonly NamedRole[],
): Promise<RoleReading[]> {
  return Promise.all(
    roles.map(async (role) => {
      try {
        const object = await readRole(k8s, role);
        return { role, object, verdict: verdictOf(object) };
      } catch (err) {
        const why = `cannot be read (${describeK8sError(err)}); the broker needs get and watch on it (deploy/job-namespace-rbac.yaml)`;
        return { role, object: undefined, verdict: { state: 'unverified', problems: [why] } as Verdict };
      }
    }),
  );
}

/**
 * Reads every named role, throws one error listing every problem if any is missing, dangerous or
 * unreadable, and otherwise returns with a watch running on each.
 */
export async function startRoleVetting(
  k8s: Pick<K8sClients, 'rbac' | 'watcher'>,
  roles: readonly NamedRole[],
  logger: Logger,
): Promise<RoleVetting> {
  const verdicts = new Map<string, Verdict>();
  const read = (role: NamedRole) => readRole(k8s, role);
  const first = await readNamedRoles(k8s, roles);
  requireAllSafe(first);

  const update = (role: NamedRole, next: Verdict) => {
    const key = keyOf(role);
    const previous = verdicts.get(key);
    verdicts.set(key, next);
    if (previous?.state === next.state) return;
    const fields = { role: describeRole(role), state: next.state };
    if (next.state === 'safe') logger.info('named role may be granted again', fields);
    else logger.warn('named role refused: grants of it are refused', { ...fields, problems: next.problems });
  };
  for (const { role, verdict } of first) verdicts.set(keyOf(role), verdict);
  const versions = new AppliedVersions();
  for (const { role, object } of first) versions.newer(keyOf(role), object?.metadata?.resourceVersion);

  const watches = new OpenWatches();
  /** Resolves when the server ends the watch, rejects on an error. */
  const watchOnce = (role: NamedRole): Promise<void> =>
    watches.once(
      k8s.watcher,
      role.kind === 'ClusterRole'
        ? `${RBAC_PATH}/clusterroles`
        : `${RBAC_PATH}/namespaces/${encodeURIComponent(role.namespace)}/roles`,
      // resourceNames in RBAC cover a list or watch only when it selects that one name.
      // No resourceVersion: the watch opens with the role as the API server's watch cache holds it
      // (an ADDED event), then follows it. The resourceVersion of a reading is the role's last write,
      // and a role unchanged for a few minutes of a busy cluster falls out of the cache's window: a
      // watch from it failed at once, "too old resource version", as long as the role stayed
      // unchanged. The cache may lag the reading before the watch: an event older than the state
      // applied last is dropped, so it cannot undo a refusal the reading made.
      { fieldSelector: `metadata.name=${role.name}`, timeoutSeconds: WATCH_SECONDS },
      (type: string, object: V1ClusterRole | V1Role) => {
        // An ERROR event ends the watch: read afresh, watch again.
        if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
        if (!versions.newer(keyOf(role), object.metadata?.resourceVersion)) return;
        update(role, verdictOf(type === 'DELETED' ? undefined : object));
      },
    );

  // One loop per role: watch; whenever a watch ends, read afresh (a watch opens with ADDED events
  // only, so a role deleted while no watch ran is seen by the reading, or, when deleted after the
  // reading and before the next watch opened, by the reading after that watch: within
  // WATCH_SECONDS). If the reading fails the role is unverified (its grants wait) until one
  // succeeds; if watches keep failing, the readings go on with a growing pause.
  const follow = async (role: NamedRole) => {
    const { pause, reset } = growingPause();
    while (!watches.stopped) {
      try {
        await watchOnce(role);
        reset();
      } catch (err) {
        if (watches.stopped) return;
        logger.warn('watch on a named role failed; reading it again', {
          role: describeRole(role),
          error: describeK8sError(err),
        });
        await pause();
      }
      while (!watches.stopped) {
        try {
          // A reading is fresh (from etcd): it always applies.
          const fresh = await read(role);
          versions.newer(keyOf(role), fresh?.metadata?.resourceVersion);
          update(role, verdictOf(fresh));
          break;
        } catch (err) {
          if (watches.stopped) return;
          update(role, { state: 'unverified', problems: [`cannot be read (${describeK8sError(err)})`] });
          await pause();
        }
      }
    }
  };
  for (const { role } of first) void follow(role);

  return {
    refusal: (grantable) => refusalOf(verdicts, grantable),
    stop: () => watches.stop(),
  };
}

/**
 * The resourceVersion of each role's state applied last. Versions are compared as the integers etcd
 * gives; one that is not an integer counts as newer, so its event applies (what happened before this
 * check existed). A deletion's event carries the deletion's version, newer than the role's last write.
 */
class AppliedVersions {
  private readonly last = new Map<string, bigint>();

  /** Whether `version` is newer than the last applied for `key` (and, if so, records it). */
  newer(key: string, version: string | undefined): boolean {
    if (!version || !/^\d+$/.test(version)) return true;
    const next = BigInt(version);
    const last = this.last.get(key);
    if (last !== undefined && next <= last) return false;
    this.last.set(key, next);
    return true;
  }
}

/** At start, every named role must be safe: one error lists every problem of every role. */
function requireAllSafe(first: { role: NamedRole; verdict: Verdict }[]): void {
  const refused = first.filter((r) => r.verdict.state !== 'safe');
  if (refused.length === 0) return;
  throw new Error(
    `the policy binds roles that jobs may not be granted:\n${refused
      .flatMap(({ role, verdict }) =>
        'problems' in verdict ? verdict.problems.map((p) => `  ${describeRole(role)}: ${p}`) : [],
      )
      .join('\n')}`,
  );
}

/** Why a grant of `grantable` is refused now, by its role's last verdict; undefined when it is not. */
function refusalOf(verdicts: ReadonlyMap<string, Verdict>, grantable: Parameters<RoleVetting['refusal']>[0]) {
  const role = namedRoleOf(grantable);
  if (!role) return undefined;
  const verdict = verdicts.get(keyOf(role));
  const detail = (problems: string[]) => `${describeRole(role)} ${problems.join('; ')}`;
  if (!verdict)
    return new BrokerError('ERR_INTERNAL', 'policy_inconsistent', `${describeRole(role)} is not vetted`);
  switch (verdict.state) {
    case 'safe':
      return undefined;
    case 'dangerous':
      return new BrokerError('ERR_FORBIDDEN', 'role_dangerous', detail(verdict.problems));
    case 'missing':
      return new BrokerError('ERR_FORBIDDEN', 'role_missing', detail(verdict.problems));
    case 'unverified':
      return new BrokerError('ERR_UNAVAILABLE', 'cluster_unavailable', detail(verdict.problems));
  }
}

/** The policy, with every grant of a named role also checked against the role as last seen. */
export function withVettedRoles(policy: PolicyEngine, vetting: RoleVetting): PolicyEngine {
  return {
    namespaces: () => policy.namespaces(),
    namedRoles: () => policy.namedRoles(),
    sourceAllowed: (ruleName, clientAddress) => policy.sourceAllowed(ruleName, clientAddress),
    inlineRoles: () => policy.inlineRoles?.() ?? [],
    shadowRole: (ruleName) => policy.shadowRole?.(ruleName),
    roleDefinition: (role) => policy.roleDefinition?.(role),
    authorize(claims, request, clientAddress) {
      const grantable = policy.authorize(claims, request, clientAddress);
      const refusal = vetting.refusal(grantable);
      if (refusal) throw refusal;
      return grantable;
    },
  };
}
