// Permissions a CI job must never receive through the broker, because each is a known way to
// escalate or to read credentials. The policy loader refuses inline roles that contain any of them
// (dangerousFindings), and the broker refuses named roles that do (grants/role-vetting.ts, through
// findDangerousRules). docs/policy.md lists the same table.
//
// Matching is deliberately coarse: resource names are compared lower-cased and regardless of API
// group (a CRD that happens to be called "secrets" is refused too), and "any verb" means any.
import type { RuleSummary } from '../../shared/api.js';

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
/** Verbs that are escalation paths on any resource. */
const ESCALATION_VERBS = new Set(['impersonate', 'escalate', 'bind', 'approve', 'sign']);

/** Resources refused with any verb, and why. */
const ANY_VERB: Record<string, string> = {
  secrets: 'reads or writes Secrets (credentials of everything in the namespace)',
  'pods/exec': 'runs commands in running containers',
  'pods/attach': 'attaches to running containers',
  'pods/portforward': 'opens network tunnels into pods',
  'pods/proxy': 'proxies requests into pods, bypassing their exposure',
  'pods/ephemeralcontainers': 'injects containers into running pods (like exec)',
  'services/proxy': 'proxies requests into services, bypassing their exposure',
  nodes: 'touches Nodes (cluster infrastructure)',
  'nodes/proxy': 'reaches the kubelet API (exec in any pod of the node)',
  'serviceaccounts/token': 'mints tokens for other ServiceAccounts',
  'certificatesigningrequests/approval': 'approves certificate requests (cluster identities)',
  persistentvolumes: 'touches PersistentVolumes (hostPath volumes give node access)',
  bindings: 'binds pods to nodes of its choosing (bypasses the scheduler and its constraints)',
  'pods/binding': 'binds pods to nodes of its choosing (bypasses the scheduler and its constraints)',
};

/** Resources refused with write verbs, and why. */
const WRITE_ONLY: Record<string, string> = {
  roles: 'writes RBAC Roles',
  rolebindings: 'writes RBAC RoleBindings',
  clusterroles: 'writes RBAC ClusterRoles',
  clusterrolebindings: 'writes RBAC ClusterRoleBindings',
  certificatesigningrequests: 'writes certificate requests',
  'certificatesigningrequests/status': 'writes certificate requests',
  validatingwebhookconfigurations: 'writes admission webhooks (sees and can reject every request)',
  mutatingwebhookconfigurations: 'writes admission webhooks (can rewrite every request)',
  validatingadmissionpolicies: 'writes admission policies',
  validatingadmissionpolicybindings: 'writes admission policies',
  mutatingadmissionpolicies: 'writes admission policies',
  mutatingadmissionpolicybindings: 'writes admission policies',
  namespaces: 'writes Namespaces (e.g. removes Pod Security labels)',
  'namespaces/status': 'writes Namespaces',
  'namespaces/finalize': 'writes Namespaces',
  customresourcedefinitions: 'writes CustomResourceDefinitions (cluster-wide API changes)',
  endpoints: 'writes Endpoints (redirects the traffic of a Service to addresses of its choosing)',
  endpointslices: 'writes EndpointSlices (redirects the traffic of a Service to addresses of its choosing)',
  serviceaccounts: 'writes ServiceAccounts (can forge or delete identities, including grants)',
  networkpolicies: 'writes NetworkPolicies (opens or closes the network boundary of the namespace)',
  // The controller route (docs/policy.md, "What controllers build for a grant"): a StatefulSet
  // recreates a deleted pod from the revision its status names, not from the template the guard checked.
  controllerrevisions:
    'writes ControllerRevisions (a StatefulSet controller rebuilds pods from them, unchecked by the admission guard)',
};

/**
 * A status is what a controller reports, and other controllers act on it: no job writes one. Refused
 * by class (any resource's `<name>/status` with a write verb); the known routes get their own reason.
 */
const STATUS_WRITES: Record<string, string> = {
  'statefulsets/status':
    'writes StatefulSet status (currentRevision names the revision its controller rebuilds pods from)',
  'daemonsets/status': 'writes workload status (controllers and rollouts act on it)',
  'deployments/status': 'writes workload status (controllers and rollouts act on it)',
  'replicasets/status': 'writes workload status (controllers and rollouts act on it)',
  'replicationcontrollers/status': 'writes workload status (controllers and rollouts act on it)',
  'jobs/status': 'writes workload status (controllers and rollouts act on it)',
  'cronjobs/status': 'writes workload status (controllers and rollouts act on it)',
  'services/status':
    'writes Service status (status.loadBalancer.ingress[].ip captures traffic to that address: CVE-2020-8554)',
  'ingresses/status':
    'writes Ingress status (the published load-balancer address, which DNS controllers follow)',
  'pods/status':
    "writes Pod status (a pod's IP is copied into its Services' EndpointSlices: redirects traffic)",
  'resourceclaims/status': 'writes ResourceClaim status (allocates devices to pods, bypassing the scheduler)',
};
const ANY_STATUS = 'writes a status subresource (what a controller reports, and other controllers act on)';

/** Resources refused with update or patch only: deleting or creating them is governed elsewhere. */
const IN_PLACE: Record<string, string> = {
  // Creating pods is left to the admission guard (deploy/admission-guard.yaml), which checks what a pod runs as.
  pods: 'updates Pods in place: a patched image takes over a running pod with its ServiceAccount and mounts',
};
const IN_PLACE_VERBS = new Set(['update', 'patch']);

function describeRule(rule: RuleSummary): string {
  const list = (values: unknown) =>
    Array.isArray(values) ? `[${values.map((v) => JSON.stringify(v)).join(', ')}]` : JSON.stringify(values);
  return `apiGroups ${list(rule.apiGroups)} resources ${list(rule.resources)} verbs ${list(rule.verbs)}`;
}

export interface DangerFinding {
  /** Index of the offending rule in the list given. */
  index: number;
  why: string;
}

/** The dangerous permissions in `rules`, per rule index. Unexpected shapes count as dangerous. */
export function dangerousFindings(rules: readonly RuleSummary[]): DangerFinding[] {
  const findings: DangerFinding[] = [];
  rules.forEach((rule, index) => {
    const add = (why: string) => {
      if (!findings.some((f) => f.index === index && f.why === why)) findings.push({ index, why });
    };
    const { apiGroups, resources, verbs } = rule;
    if (
      ![apiGroups, resources, verbs].every((l) => Array.isArray(l) && l.every((v) => typeof v === 'string'))
    ) {
      add('is not a well-formed RBAC rule');
      return;
    }
    const lowerVerbs = verbs.map((v) => v.toLowerCase());
    if (verbs.some((v) => v.includes('*')))
      add('uses a wildcard verb (grants every verb, including future ones)');
    if (resources.some((r) => r.includes('*')))
      add('uses a wildcard resource (grants every resource, including Secrets)');
    if (apiGroups.some((g) => g.includes('*'))) add('uses a wildcard API group');
    for (const verb of lowerVerbs)
      if (ESCALATION_VERBS.has(verb)) add(`uses the "${verb}" verb (privilege escalation)`);
    const writes = lowerVerbs.some((v) => WRITE_VERBS.has(v));
    const inPlace = lowerVerbs.some((v) => IN_PLACE_VERBS.has(v));
    for (const resource of resources.map((r) => r.toLowerCase())) {
      const anyVerb = ANY_VERB[resource];
      if (anyVerb) add(anyVerb);
      const writeOnly = WRITE_ONLY[resource];
      if (writeOnly && writes) add(writeOnly);
      const inPlaceOnly = IN_PLACE[resource];
      if (inPlaceOnly && inPlace) add(inPlaceOnly);
      if (writes && !writeOnly && !resource.includes('*') && resource.endsWith('/status'))
        add(STATUS_WRITES[resource] ?? ANY_STATUS);
    }
  });
  return findings;
}

/**
 * One human-readable line per dangerous permission in `rules`
 * (`rules[2] (apiGroups [""] resources ["secrets"] verbs ["get"]): reads or writes Secrets …`),
 * or an empty list when the rules are acceptable: the check for the rules of named roles as the
 * broker reads them from the cluster.
 */
export function findDangerousRules(rules: readonly RuleSummary[]): string[] {
  return dangerousFindings(rules).map((f) => {
    const rule = rules[f.index];
    return `rules[${f.index}]${rule ? ` (${describeRule(rule)})` : ''}: ${f.why}`;
  });
}

/**
 * Returns why a named ClusterRole/Role may not be granted whatever it contains, or undefined. The
 * policy file is checked before the broker reaches the cluster, so the well-known broad roles are
 * refused by name there already; every named role's rules are read and vetted at start.
 */
export function forbiddenRoleNameProblem(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower === 'cluster-admin' || lower === 'admin' || lower === 'edit')
    return `"${name}" is a built-in broad role (it includes Secrets and more); define a narrow role instead`;
  if (lower.startsWith('system:'))
    return `"${name}" is a Kubernetes system role; never grant system roles to jobs`;
  return undefined;
}
