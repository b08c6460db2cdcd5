// Direct mode's cheaper self-revoke mechanism: one shared Role per job namespace
// (SELF_REVOKE_ROLE: delete on ServiceAccounts and RoleBindings), which each grant binds by its own
// RoleBinding. The broker holds `bind` on that Role by name, so the binding costs no RBAC escalation
// check, where the per-grant pair (a Role naming the grant's objects, and its binding) costs two
// (docs/benchmarks.md, "Write budget").
//
// The Role alone would let any grant delete every ServiceAccount and RoleBinding of its namespace.
// The self-revoke guard, an admission policy (self-revoke-guard.ts), narrows it to the grant's own
// objects; so the shared Role is bound only while the broker has verified that guard:
// - it reads the policy and its binding at start and every GUARD_RECHECK_MS, and uses the shared
//   Role only once two reads GUARD_SETTLE_MS or more apart found them correct and unchanged (the
//   API server's admission plugin enforces a new policy a moment after it is stored), and then a
//   canary grant identity was refused by the guard (self-revoke-probe.ts: objects that read right
//   prove nothing if the API server does not enforce them); the probe is repeated every
//   PROBE_RETRY_MS while grants bind the shared Role and whenever the guard's objects change, and a
//   failed one only after PROBE_RETRY_MS (or at once if the guard's objects change);
// - the first read that finds them missing, changed for the worse, or unreadable stops it at once:
//   new grants get the pair again, and the broker deletes the shared Role in every namespace, so
//   the grants already bound to it keep no permission the guard no longer narrows (their post step
//   then revokes through the broker, or the reaper deletes them at expiry; a later verification
//   recreates the Role, and their bindings work again).
// The shared Role is kept like an inline role's (inline-roles.ts): created once, restored if
// edited or deleted, owned by no grant.
import type { K8sClients } from '../kube/clients.js';
import { deleteIgnoringNotFound, describeK8sError, readIgnoringNotFound } from '../kube/errors.js';
import type { Logger } from '../logger.js';
import { SELF_REVOKE_GUARD, SELF_REVOKE_ROLE, SELF_REVOKE_ROLE_PART } from '../naming.js';
import { SHARED_SELF_REVOKE_RULES } from './grant-objects.js';
import { InlineRoles, type SharedRoleShape } from './inline-roles.js';
import { guardProblems } from './self-revoke-guard.js';
import type { GuardProbe } from './self-revoke-probe.js';
import type { RuleSummary } from '../../shared/api.js';

/** How often the guard is read again while nothing changes. */
export const GUARD_RECHECK_MS = 10_000;
/** The least time between the two reads that must agree before the shared Role is used. */
export const GUARD_SETTLE_MS = 2_000;
/** How long a failed enforcement probe stands while the guard's objects stay the same. */
export const PROBE_RETRY_MS = 300_000;

const SHAPE: SharedRoleShape = {
  nameOf: () => SELF_REVOKE_ROLE,
  part: SELF_REVOKE_ROLE_PART,
  what: 'the shared self-revoke Role',
};

const RULES: RuleSummary[] = SHARED_SELF_REVOKE_RULES.map((r) => ({
  apiGroups: r.apiGroups ?? [],
  resources: r.resources ?? [],
  verbs: r.verbs,
}));

export interface SharedSelfRevokeOptions {
  /** The job namespaces (the running policy's). */
  namespaces: () => readonly string[];
  /** Whether the API server enforces the guard, asked before the shared Role is used (self-revoke-probe.ts). */
  probe: GuardProbe;
  logger?: Logger;
  /** Told whenever the mechanism changes: true when grants bind the shared Role, false for the pair. */
  onChange?: (shared: boolean) => void;
  recheckMs?: number;
  settleMs?: number;
  now?: () => number;
}

export class SharedSelfRevoke {
  private readonly roles: InlineRoles;
  private shared = false;
  /** resourceVersions of the last correct read, which the next one must repeat. */
  private seen: string | undefined;
  /** The shared Role may exist where the guard is not verified: delete it on the next failed read. */
  private mayHaveRole = true;
  /** Whether the mechanism in use was logged since start (the first check says which). */
  private reported = false;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  /** The last failed probe: not repeated for the same guard objects and namespace until PROBE_RETRY_MS has passed. */
  private failedProbe: { key: string; at: number; problems: string[] } | undefined;
  /** The guard's objects at the last probe the guard passed, and when. */
  private proven: { versions: string; at: number } | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly k8s: Pick<K8sClients, 'rbac' | 'admission' | 'hotPath'>,
    private readonly options: SharedSelfRevokeOptions,
  ) {
    this.roles = new InlineRoles(k8s, options.logger, SHAPE);
    this.now = options.now ?? Date.now;
  }

  /** Whether new grants bind the shared Role now. */
  get inUse(): boolean {
    return this.shared;
  }

  /**
   * The shared Role a new grant in `namespace` should bind, created if missing; undefined when the
   * grant should get the pair (the guard is not verified, or the Role cannot be written).
   */
  async roleFor(namespace: string): Promise<string | undefined> {
    if (!this.shared) return undefined;
    const name = await this.roles
      .ensure({ namespace, role: SELF_REVOKE_ROLE, rules: RULES })
      .catch((err: unknown) => {
        this.options.logger?.error('cannot write the shared self-revoke Role; this grant gets the pair', {
          namespace,
          error: describeK8sError(err),
        });
        return undefined;
      });
    if (this.shared) return name;
    // The guard failed while the Role was being written: take it away again.
    this.mayHaveRole = true;
    void this.withdraw();
    return undefined;
  }

  /** Reads the guard once and switches the mechanism accordingly. */
  async check(): Promise<void> {
    let problems: string[];
    let versions = '';
    try {
      const [policy, binding] = await Promise.all([
        readIgnoringNotFound(() =>
          this.k8s.admission.readValidatingAdmissionPolicy({ name: SELF_REVOKE_GUARD }),
        ),
        readIgnoringNotFound(() =>
          this.k8s.admission.readValidatingAdmissionPolicyBinding({ name: SELF_REVOKE_GUARD }),
        ),
      ]);
      problems = guardProblems(policy, binding);
      versions = `${resourceVersionOf(policy)}/${resourceVersionOf(binding)}`;
    } catch (err) {
      problems = [`cannot read it: ${describeK8sError(err)}`];
    }
    if (problems.length > 0) return this.fallBack(problems);
    const settled = this.seen === versions;
    this.seen = versions;
    // Probed before first use, again every PROBE_RETRY_MS, and whenever the guard's objects changed.
    const proven = this.proven;
    if (!settled || (this.shared && proven?.versions === versions && this.now() - proven.at < PROBE_RETRY_MS))
      return;
    const refused = await this.probed(versions);
    if (this.stopped) return;
    if (refused.length > 0) return this.fallBack(refused);
    this.proven = { versions, at: this.now() };
    if (!this.shared) this.useShared();
  }

  private useShared(): void {
    this.shared = true;
    this.reported = true;
    this.mayHaveRole = true;
    // Written now (not by the first grant), and restored if edited or deleted while the guard holds.
    const uses = () =>
      this.options.namespaces().map((namespace) => ({ namespace, role: SELF_REVOKE_ROLE, rules: RULES }));
    void this.roles.ensureAll(uses());
    this.roles.start(uses);
    this.options.logger?.info(
      'the self-revoke guard is installed and enforcing: grants bind the shared self-revoke Role',
      { policy: SELF_REVOKE_GUARD },
    );
    this.options.onChange?.(true);
  }

  /** The enforcement probe's problems, or a recent failed probe's for the same guard and namespace. */
  private async probed(versions: string): Promise<string[]> {
    const namespace = this.options.namespaces()[0];
    if (namespace === undefined) return ['the policy names no job namespace to probe it in'];
    const key = `${namespace}/${versions}`;
    const last = this.failedProbe;
    if (last?.key === key && this.now() - last.at < PROBE_RETRY_MS) return last.problems;
    const problems = await this.options
      .probe(namespace)
      .catch((err: unknown) => [`the probe failed: ${describeK8sError(err)}`]);
    this.failedProbe = problems.length > 0 ? { key, at: this.now(), problems } : undefined;
    if (problems.length > 0)
      this.options.logger?.warn(
        'the self-revoke guard is not proven to enforce: grants get the per-grant pair',
        {
          policy: SELF_REVOKE_GUARD,
          namespace,
          problems,
        },
      );
    return problems;
  }

  /** Checks now, then keeps checking (sooner while a first correct read waits for its confirmation). */
  async start(): Promise<void> {
    await this.check();
    const settleMs = this.options.settleMs ?? GUARD_SETTLE_MS;
    const recheckMs = this.options.recheckMs ?? GUARD_RECHECK_MS;
    const schedule = () => {
      const waiting = this.seen !== undefined && !this.shared;
      this.timer = setTimeout(tick, waiting ? settleMs : recheckMs).unref();
    };
    const tick = () => {
      this.checking = this.check()
        .catch((err: unknown) =>
          this.options.logger?.error('the self-revoke guard check failed', { error: describeK8sError(err) }),
        )
        .finally(() => {
          if (this.timer) schedule();
        });
    };
    schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A check in flight (a probe takes seconds) must not start the Role's keeper after it stopped.
    await this.checking;
    await this.roles.stop();
  }

  private async fallBack(problems: string[]): Promise<void> {
    const was = this.shared;
    this.shared = false;
    this.seen = undefined;
    this.proven = undefined;
    if (!this.reported) {
      this.reported = true;
      this.options.logger?.info(
        'the self-revoke guard is not verified: grants get the per-grant self-revoke pair',
        {
          policy: SELF_REVOKE_GUARD,
          problems,
        },
      );
    } else if (was) {
      this.options.logger?.warn(
        'the self-revoke guard is not enforcing: grants get the per-grant self-revoke pair again',
        { policy: SELF_REVOKE_GUARD, problems },
      );
      this.options.onChange?.(false);
    }
    // A re-check in flight could write the Role back after the deletion: let it finish first.
    await this.roles.stop();
    if (this.mayHaveRole) await this.withdraw();
  }

  /** Deletes the shared Role everywhere, so no grant keeps a permission the guard does not narrow. */
  private async withdraw(): Promise<void> {
    this.roles.forget();
    const results = await Promise.allSettled(
      this.options
        .namespaces()
        .map((namespace) =>
          deleteIgnoringNotFound(() =>
            this.k8s.hotPath.deleteNamespacedRole({ name: SELF_REVOKE_ROLE, namespace }),
          ),
        ),
    );
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [describeK8sError(r.reason)] : []));
    if (failed.length === 0 && !this.shared) this.mayHaveRole = false;
    else if (failed.length > 0)
      this.options.logger?.error('cannot delete the shared self-revoke Role; retried at the next check', {
        errors: failed,
      });
  }
}

const resourceVersionOf = (o: unknown) =>
  (o as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion ?? '';
