// The shared Roles of inline policy roles: one Role per (job namespace, inline role), holding
// exactly the policy's rules, bound by each grant of that role with its own RoleBinding.
//
// Why shared: creating a Role makes the API server check that the creator holds every permission in
// it (RBAC escalation prevention), which waits ~100 ms for a consistent read of its bindings
// (docs/benchmarks.md, "Write budget"). Paid once per namespace and role here, at start or on the
// first grant, instead of on every exchange; the grant's RoleBinding to it is as cheap as one to a
// named ClusterRole because the broker holds `bind` on these Roles by name.
//
// A shared Role is never owned by a grant (revocation and the reaper delete only the grant's
// binding), is labelled as managed, and is kept equal to the policy: a missing one is created, a
// changed one (policy reload, or someone editing it) is written back, on the answer's path the first
// time and then re-checked in the background every RECHECK_MS.
//
// The same keeping serves the shared self-revoke Role (shared-self-revoke.ts), with its own shape:
// its name and part label differ, its rules are fixed.
import type { V1PolicyRule, V1Role } from '@kubernetes/client-node';
import type { RuleSummary } from '../../shared/api.js';
import type { K8sClients } from '../kube/clients.js';
import { describeK8sError, isAlreadyExists, isNotFound } from '../kube/errors.js';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  PART_LABEL,
  ROLE_ANNOTATION,
  INLINE_ROLE_PART,
  inlineRoleName,
} from '../naming.js';
import type { Logger } from '../logger.js';
import type { InlineRoleUse } from '../types.js';

/** How often a Role already reconciled is read again, off the answer's path. */
export const RECHECK_MS = 30_000;

export function toPolicyRule(r: RuleSummary): V1PolicyRule {
  const rule: V1PolicyRule = { apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs };
  if (r.resourceNames?.length) rule.resourceNames = r.resourceNames;
  return rule;
}

/** The rules as the API server stores them, as one comparable string. */
const rulesKey = (rules: readonly V1PolicyRule[]): string =>
  JSON.stringify(
    rules.map((r) => [
      r.apiGroups ?? [],
      r.resources ?? [],
      r.verbs,
      r.resourceNames ?? [],
      r.nonResourceURLs ?? [],
    ]),
  );

type Entry = { rulesKey: string; ready: Promise<string> };

/** What tells one kind of shared Role apart: its name per role, its part label, how logs call it. */
export interface SharedRoleShape {
  nameOf(role: string): string;
  part: string;
  what: string;
}

export const INLINE_ROLE_SHAPE: SharedRoleShape = {
  nameOf: inlineRoleName,
  part: INLINE_ROLE_PART,
  what: 'the shared Role of an inline role',
};

export class InlineRoles {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private rechecking: Promise<unknown> | undefined;

  constructor(
    private readonly k8s: Pick<K8sClients, 'rbac'>,
    private readonly logger?: Logger,
    private readonly shape: SharedRoleShape = INLINE_ROLE_SHAPE,
  ) {}

  /** Forgets what was reconciled, so the next ensure() reads (and creates) the Roles again. */
  forget(): void {
    this.entries.clear();
  }

  /**
   * The shared Role's name, once it exists with exactly `use.rules`. Resolves at once when it was
   * reconciled with these rules before; otherwise reads, creates or rewrites it (and throws the
   * API's error, e.g. 403 when the broker does not hold these permissions itself).
   */
  ensure(use: InlineRoleUse): Promise<string> {
    const key = `${use.namespace}/${use.role}`;
    const wanted = rulesKey(use.rules.map(toPolicyRule));
    const known = this.entries.get(key);
    if (known?.rulesKey === wanted) return known.ready;
    const entry: Entry = { rulesKey: wanted, ready: this.reconcile(use) };
    this.entries.set(key, entry);
    // A failure is not remembered: the next grant tries again.
    entry.ready.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return entry.ready;
  }

  /** Reconciles each use now; failures are logged, not thrown (grants of that role try again). */
  async ensureAll(uses: readonly InlineRoleUse[]): Promise<void> {
    await Promise.all(uses.map((use) => this.ensure(use).catch((err: unknown) => this.logFailure(use, err))));
  }

  /**
   * Reads every Role of `uses()` again every `everyMs`, so a deleted or edited one is restored.
   * Grants keep using the last good state meanwhile; a failed re-check makes the next grant of
   * that role reconcile on its own path.
   */
  start(uses: () => readonly InlineRoleUse[], everyMs = RECHECK_MS): void {
    if (this.timer) return;
    const tick = () => {
      this.rechecking = Promise.all(uses().map((use) => this.recheck(use))).then(() => {
        if (this.timer) this.timer = setTimeout(tick, everyMs).unref();
      });
    };
    this.timer = setTimeout(tick, everyMs).unref();
  }

  /** Stops the re-checks; resolves once one in progress has finished. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.rechecking;
  }

  private async recheck(use: InlineRoleUse): Promise<void> {
    const key = `${use.namespace}/${use.role}`;
    const before = this.entries.get(key);
    try {
      const name = await this.reconcile(use);
      // Unless an ensure() with other rules (a policy reload) took the entry meanwhile.
      if (this.entries.get(key) === before)
        this.entries.set(key, {
          rulesKey: rulesKey(use.rules.map(toPolicyRule)),
          ready: Promise.resolve(name),
        });
    } catch (err) {
      if (this.entries.get(key) === before) this.entries.delete(key);
      this.logFailure(use, err);
    }
  }

  private logFailure(use: InlineRoleUse, err: unknown): void {
    this.logger?.error(`cannot reconcile ${this.shape.what}; its grants fail until it can`, {
      namespace: use.namespace,
      role: use.role,
      error: describeK8sError(err),
    });
  }

  private async reconcile(use: InlineRoleUse): Promise<string> {
    const name = this.shape.nameOf(use.role);
    const { namespace } = use;
    const rules = use.rules.map(toPolicyRule);
    const metadata = {
      name,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [PART_LABEL]: this.shape.part },
      annotations: { [ROLE_ANNOTATION]: use.role },
    };
    // Two tries: another replica may create or rewrite it between our read and our write.
    for (let attempt = 1; ; attempt++) {
      let current: V1Role | undefined;
      try {
        current = await this.k8s.rbac.readNamespacedRole({ name, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      try {
        if (!current) {
          await this.k8s.rbac.createNamespacedRole({ namespace, body: { metadata, rules } });
          this.logger?.info(`created ${this.shape.what}`, { namespace, role: use.role, name });
        } else if (
          rulesKey(current.rules ?? []) !== rulesKey(rules) ||
          current.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE ||
          current.metadata?.ownerReferences?.length
        ) {
          // No ownerReferences: a grant owning it would take it along when the grant goes.
          await this.k8s.rbac.replaceNamespacedRole({
            name,
            namespace,
            body: {
              metadata: { ...metadata, resourceVersion: current.metadata?.resourceVersion },
              rules,
            },
          });
          this.logger?.warn(`rewrote ${this.shape.what} to what the broker wants`, {
            namespace,
            role: use.role,
            name,
          });
        }
        return name;
      } catch (err) {
        // 409: AlreadyExists on create, Conflict (stale resourceVersion) on replace.
        if (attempt < 2 && isAlreadyExists(err)) continue;
        throw err;
      }
    }
  }
}
