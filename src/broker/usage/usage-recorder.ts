// What each live grant did through this replica's gateway, counted in memory: per kind of call
// (verb, group, resource, subresource, namespace, name, outcome) a count, never a body or a
// credential. The revocation answer hands it to the post step (usage-report.ts). Bounded: a grant
// keeps at most MAX_KINDS kinds (then only counts grow), and the recorder at most MAX_GRANTS grants
// (the oldest go first: grants that ended without a revocation here, reaped or revoked elsewhere).
// Shadow mode: each allowed call of a grant whose rule names a shadowRole is evaluated against
// that role's rules too (rbac/evaluate.ts), and a call it would deny is counted and reported.
import { allowingRuleIndex, type RbacRule } from '../rbac/evaluate.js';
import { outcomeOf, rbacRequestOf, type ApiCall, type CallOutcome } from './api-call.js';

export const MAX_KINDS = 500;
export const MAX_GRANTS = 10_000;

export interface RecordedGrant {
  grantId: string;
  /** Where the grant was made: where its role applies. */
  namespace: string;
  ruleName?: string;
  /** The policy's name of the granted role. */
  role?: string;
}

export interface ShadowRole {
  role: string;
  rules: readonly RbacRule[];
}

export interface CallKind extends Omit<ApiCall, 'status'> {
  outcome: CallOutcome;
  calls: number;
  /** Allowed, and the shadow role would have denied it. */
  wouldDeny?: boolean;
}

export interface GrantCalls {
  role?: string;
  kinds: CallKind[];
  calls: number;
  truncated: boolean;
  shadow?: { role: string; wouldDenyCalls: number };
}

interface Entry {
  role?: string;
  kinds: Map<string, CallKind>;
  calls: number;
  truncated: boolean;
  shadow?: { role: string; wouldDenyCalls: number };
}

export interface UsageRecorderOptions {
  /** The shadow role of a policy rule, under the policy running now. */
  shadowRole?: (ruleName: string) => ShadowRole | undefined;
  /** Told of every call a shadow role would deny (metric and log). */
  onWouldDeny?: (grant: RecordedGrant, call: ApiCall, shadow: ShadowRole) => void;
  maxKinds?: number;
  maxGrants?: number;
}

/** Self reviews every authenticated user may make (the default ClusterRole system:basic-user and its kin). */
const SELF_REVIEWS = new Set([
  'authorization.k8s.io/selfsubjectaccessreviews',
  'authorization.k8s.io/selfsubjectrulesreviews',
  'authentication.k8s.io/selfsubjectreviews',
]);

/**
 * Calls Kubernetes' default bindings allow every authenticated user (discovery and the other
 * non-resource URLs, self reviews): switching to the shadow role would not deny them, so they are
 * never counted as would-deny.
 */
function allowedToEveryone(call: ApiCall): boolean {
  return (
    call.resource === undefined ||
    (call.verb === 'create' && SELF_REVIEWS.has(`${call.apiGroup}/${call.resource}`))
  );
}

export class UsageRecorder {
  private readonly grants = new Map<string, Entry>();

  constructor(private readonly options: UsageRecorderOptions = {}) {}

  record(grant: RecordedGrant, call: ApiCall): void {
    const entry = this.entryOf(grant.grantId);
    entry.role ??= grant.role;
    entry.calls += 1;
    const outcome = outcomeOf(call.status);
    const shadow =
      outcome === 'allowed' && grant.ruleName ? this.options.shadowRole?.(grant.ruleName) : undefined;
    const wouldDeny =
      shadow !== undefined &&
      !allowedToEveryone(call) &&
      allowingRuleIndex({ namespace: grant.namespace, rules: shadow.rules }, rbacRequestOf(call)) < 0;
    if (shadow) {
      entry.shadow ??= { role: shadow.role, wouldDenyCalls: 0 };
      if (wouldDeny) {
        entry.shadow.wouldDenyCalls += 1;
        this.options.onWouldDeny?.(grant, call, shadow);
      }
    }
    const key = JSON.stringify([
      call.verb,
      call.apiGroup,
      call.resource,
      call.subresource,
      call.namespace,
      call.name,
      outcome,
      wouldDeny,
    ]);
    const kind = entry.kinds.get(key);
    if (kind) kind.calls += 1;
    else if (entry.kinds.size < (this.options.maxKinds ?? MAX_KINDS))
      entry.kinds.set(key, {
        verb: call.verb,
        apiGroup: call.apiGroup,
        resource: call.resource,
        subresource: call.subresource,
        namespace: call.namespace,
        name: call.name,
        outcome,
        calls: 1,
        ...(wouldDeny ? { wouldDeny } : {}),
      });
    else entry.truncated = true;
  }

  /** The grant's calls, forgotten here: called once, when the grant ends. */
  take(grantId: string): GrantCalls | undefined {
    const entry = this.grants.get(grantId);
    if (!entry) return undefined;
    this.grants.delete(grantId);
    return {
      role: entry.role,
      kinds: [...entry.kinds.values()],
      calls: entry.calls,
      truncated: entry.truncated,
      shadow: entry.shadow,
    };
  }

  get size(): number {
    return this.grants.size;
  }

  private entryOf(grantId: string): Entry {
    let entry = this.grants.get(grantId);
    if (entry) return entry;
    if (this.grants.size >= (this.options.maxGrants ?? MAX_GRANTS)) {
      const oldest = this.grants.keys().next().value;
      if (oldest !== undefined) this.grants.delete(oldest);
    }
    entry = { kinds: new Map(), calls: 0, truncated: false };
    this.grants.set(grantId, entry);
    return entry;
  }
}
