// The test policy, built instead of written out: typed rules, roles and match, rendered to the
// YAML file the broker loads (docs/policy.md). One call with no arguments but the namespaces gives
// a valid policy that grants the local OIDC issuer's default claims (oidc-issuer.ts). No cluster
// and no broker here, so unit tests may use it too.
import { dump } from 'js-yaml';

/** The IDs of defaultClaims() in oidc-issuer.ts: the repository the default rule grants. */
export const OWNER_ID = '987654';
export const REPO_ID = '123456789';

/** An exact value, `{ glob }` (where the field allows one), or a list of either. */
export type MatchValue = string | { glob: string } | (string | { glob: string })[];
export type MatchField =
  | 'iss'
  | 'repository_owner_id'
  | 'repository_id'
  | 'ref'
  | 'event_name'
  | 'environment'
  | 'job_workflow_ref'
  | 'runner_environment';
/** `undefined` drops a field of the default match (e.g. `ref` for an environment rule). */
export type MatchSpec = Partial<Record<MatchField, MatchValue | undefined>>;

export type RoleSpec =
  | { clusterRole: string }
  | { role: string }
  | { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] };

export interface RuleSpec {
  /** Default: main-pushes, or main-pushes-<n> after the first. */
  name?: string;
  /** Merged over DEFAULT_MATCH. */
  match?: MatchSpec;
  /** Default: the policy's namespaces. */
  namespaces?: string[];
  /** Default: ['viewer']. */
  roles?: string[];
  /** Default 900. */
  maxTtlSeconds?: number;
  /** Default: absent (any source address). */
  sourceRanges?: string[];
  /** Default: none (grants of the rule cannot be renewed). */
  maxSessionSeconds?: number;
  /** Default: none (no shadow mode). */
  shadowRole?: string;
}

export interface PolicySpec {
  /** The namespaces every rule allows unless it names its own. */
  namespaces: string[];
  /** Default: the EXAMPLE_ROLES that the rules name. */
  roles?: Record<string, RoleSpec>;
  /** Default: one rule with every default. */
  rules?: RuleSpec[];
}

/** refs/heads/main pushes of the default repository. */
export const DEFAULT_MATCH: Readonly<MatchSpec> = {
  repository_owner_id: OWNER_ID,
  repository_id: REPO_ID,
  ref: 'refs/heads/main',
  event_name: 'push',
};

/** The ClusterRoles of deploy/job-clusterroles.yaml. */
export const EXAMPLE_ROLES: Readonly<Record<string, RoleSpec>> = {
  deployer: { clusterRole: 'k8s-ea-deployer' },
  viewer: { clusterRole: 'k8s-ea-viewer' },
};

/** The policy as the YAML document's object. */
export function buildPolicy(spec: PolicySpec): Record<string, unknown> {
  const rules = (spec.rules ?? [{}]).map((r, i) => {
    const match = Object.fromEntries(
      Object.entries({ ...DEFAULT_MATCH, ...r.match }).filter(([, v]) => v !== undefined),
    );
    return {
      name: r.name ?? (i === 0 ? 'main-pushes' : `main-pushes-${i + 1}`),
      match,
      namespaces: r.namespaces ?? spec.namespaces,
      roles: r.roles ?? ['viewer'],
      maxTtlSeconds: r.maxTtlSeconds ?? 900,
      ...(r.sourceRanges && { sourceRanges: r.sourceRanges }),
      ...(r.maxSessionSeconds === undefined ? {} : { maxSessionSeconds: r.maxSessionSeconds }),
      ...(r.shadowRole === undefined ? {} : { shadowRole: r.shadowRole }),
    };
  });
  return {
    apiVersion: 'k8s-ephemeral-access/v1',
    kind: 'Policy',
    roles: spec.roles ?? exampleRolesFor(rules.flatMap((r) => r.roles)),
    rules,
  };
}

function exampleRolesFor(names: string[]): Record<string, RoleSpec> {
  const roles: Record<string, RoleSpec> = {};
  for (const name of names) {
    const role = EXAMPLE_ROLES[name];
    if (!role) throw new Error(`no example role ${name}: define it in the policy's roles`);
    roles[name] = role;
  }
  return roles;
}

/** The policy file's text. */
export function policyYaml(spec: PolicySpec): string {
  return dump(buildPolicy(spec), { lineWidth: -1 });
}
