// The broker's RBAC exactly as deploy/ ships it, installed for a set of job namespaces, and a
// kubeconfig that authenticates as the broker's ServiceAccount under it (never admin).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { clusterEndpoint, coreApi, kubectlAdmin, tryKubectlAdmin, uniqueName } from './cluster.js';
import { repoRoot } from './repo-root.js';
import { inlineRoleName, SELF_REVOKE_GUARD } from '../../src/broker/naming.js';

const deployDir = join(repoRoot, 'deploy');

/** The names deploy/ uses, which installBrokerRbac replaces. */
export const DEPLOY_BROKER_NAMESPACE = 'k8s-ephemeral-access';
export const DEPLOY_JOB_NAMESPACE = 'staging';
export const DEPLOY_BROKER_SA = 'k8s-ea-broker';
/** The deploy/ files that make up the broker's RBAC (and the example job roles). */
export const RBAC_FILES = [
  'serviceaccount.yaml',
  'broker-namespace-rbac.yaml',
  'tokenreview-rbac.yaml',
  'job-namespace-rbac.yaml',
  'job-clusterroles.yaml',
];

type K8sDoc = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  subjects?: { kind: string; name: string; namespace?: string }[];
  roleRef?: { kind: string; name: string };
  rules?: { resourceNames?: string[]; [k: string]: unknown }[];
  [k: string]: unknown;
};

// A JSON round trip, not structuredClone: under jest's VM the latter returns objects of another
// realm, which js-yaml refuses to dump.
const cloneDoc = (d: K8sDoc): K8sDoc => JSON.parse(JSON.stringify(d)) as K8sDoc;

export function readDeployDocs(file: string): K8sDoc[] {
  return (loadAll(readFileSync(join(deployDir, file), 'utf8')) as (K8sDoc | null)[]).filter(
    (d): d is K8sDoc => d !== null,
  );
}

/** The job namespaces deploy/job-namespace-rbac.yaml gives the broker RBAC in (its cluster-scoped role reader has none). */
export function rbacJobNamespaces(): string[] {
  return [
    ...new Set(
      readDeployDocs('job-namespace-rbac.yaml').flatMap((d) =>
        d.metadata.namespace ? [d.metadata.namespace] : [],
      ),
    ),
  ];
}

/**
 * deploy/self-revoke-guard-reader.yaml for one broker identity: its ClusterRole and binding named after
 * that broker's namespace (so runs side by side keep their own) and bound to its ServiceAccount there.
 */
export function selfRevokeGuardReaderFor(brokerNamespace: string): string {
  const docs = loadAll(readFileSync(join(repoRoot, 'deploy', 'self-revoke-guard-reader.yaml'), 'utf8')) as {
    metadata: { name: string };
    roleRef?: { name: string };
    subjects?: { namespace: string }[];
  }[];
  for (const d of docs) {
    d.metadata.name += `-${brokerNamespace}`;
    if (d.roleRef) d.roleRef.name += `-${brokerNamespace}`;
    for (const s of d.subjects ?? []) s.namespace = brokerNamespace;
  }
  return docs.map((d) => dump(d)).join('---\n');
}

/** Sets the installed self-revoke guard's binding to these validation actions (e.g. Warn, Deny). */
export function setSelfRevokeGuardActions(actions: string[]): void {
  kubectlAdmin([
    'patch',
    'validatingadmissionpolicybinding',
    SELF_REVOKE_GUARD,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { validationActions: actions } }),
  ]);
}

/**
 * Creates or updates objects without a race: server-side apply creates a missing object or merges
 * into an existing one in one request, so test files applying the same shared objects at the same
 * moment (the example ClusterRoles) all succeed. A client-side `kubectl apply` reads first and
 * then creates, and the loser of that race fails with AlreadyExists.
 */
export function applyIdempotently(yaml: string): void {
  kubectlAdmin([...IDEMPOTENT_APPLY, '-f', '-'], yaml);
}

/** The kubectl arguments applyIdempotently runs (exported for the test that races them). */
export const IDEMPOTENT_APPLY = [
  'apply',
  '--server-side',
  '--force-conflicts',
  '--field-manager=k8s-ea-tests',
];

/** deploy/job-clusterroles.yaml, which every test file that grants a named role shares. */
export function applyExampleClusterRoles(): void {
  applyIdempotently(readFileSync(join(deployDir, 'job-clusterroles.yaml'), 'utf8'));
}

export interface BrokerRbacOptions {
  /** The broker's namespace; created when missing. Default: a fresh unique one. */
  brokerNamespace?: string;
  /** Seconds the broker's token lives. Default 3600. */
  tokenSeconds?: number;
  /** More ClusterRoles the broker may bind and read, as an admin adds the policy's roles to deploy/. */
  jobClusterRoles?: string[];
  /** The policy's inline role names, whose shared Roles the broker may update and bind (as deploy/ lists them). */
  inlineRoles?: string[];
}

export interface BrokerRbac {
  brokerNamespace: string;
  serviceAccount: string;
  /** A kubeconfig authenticating as the broker's ServiceAccount. */
  kubeconfigPath: string;
  token: string;
  /** Every object applied, as YAML (for inspection). */
  appliedYaml: string;
  /** Deletes the cluster-scoped objects, the broker namespace (if created here) and the temp files. */
  cleanup(): Promise<void>;
}

/**
 * Renders deploy/'s RBAC for these namespaces: the broker namespace substituted, one copy of the
 * job-namespace Role/RoleBinding per job namespace, cluster-scoped broker objects suffixed so
 * parallel test files do not share them. Content is otherwise exactly what deploy/ says.
 */
export function renderBrokerRbac(
  namespaces: string[],
  brokerNamespace: string,
  jobClusterRoles: string[] = [],
  inlineRoles: string[] = [],
): K8sDoc[] {
  const suffix = `-${brokerNamespace}`;
  const out: K8sDoc[] = [];
  const addJobClusterRoles = (d: K8sDoc) => {
    for (const rule of d.rules ?? []) {
      if ((rule.resources as string[] | undefined)?.includes('clusterroles') && rule.resourceNames)
        rule.resourceNames.push(...jobClusterRoles);
    }
    // The shared Roles of inline roles, as `rbac generate` lists them for a policy that has some.
    if (d.kind === 'Role' && d.metadata.namespace === DEPLOY_JOB_NAMESPACE && inlineRoles.length > 0) {
      const resourceNames = inlineRoles.map(inlineRoleName);
      const group = 'rbac.authorization.k8s.io';
      d.rules = [
        ...(d.rules ?? []),
        { apiGroups: [group], resources: ['roles'], verbs: ['update'], resourceNames },
        { apiGroups: [group], resources: ['roles'], verbs: ['bind'], resourceNames: [...resourceNames] },
      ];
    }
  };
  const fixSubjects = (d: K8sDoc) => {
    for (const s of d.subjects ?? [])
      if (s.namespace === DEPLOY_BROKER_NAMESPACE) s.namespace = brokerNamespace;
  };
  for (const file of RBAC_FILES) {
    for (const doc of readDeployDocs(file)) {
      if (file !== 'job-clusterroles.yaml') addJobClusterRoles(doc);
      const ns = doc.metadata.namespace;
      if (ns === DEPLOY_JOB_NAMESPACE) {
        for (const jobNs of namespaces) {
          const copy = cloneDoc(doc);
          copy.metadata.namespace = jobNs;
          fixSubjects(copy);
          out.push(copy);
        }
      } else if (ns !== undefined && ns !== DEPLOY_BROKER_NAMESPACE) {
        continue; // the example policy's other job namespaces (production): staging is the template
      } else if (ns === DEPLOY_BROKER_NAMESPACE) {
        const copy = cloneDoc(doc);
        copy.metadata.namespace = brokerNamespace;
        fixSubjects(copy);
        out.push(copy);
      } else if (doc.kind === 'ClusterRoleBinding' || doc.metadata.name.startsWith('k8s-ea-broker')) {
        const copy = cloneDoc(doc);
        copy.metadata.name += suffix;
        if (copy.roleRef?.name.startsWith('k8s-ea-broker')) copy.roleRef.name += suffix;
        fixSubjects(copy);
        out.push(copy);
      } else {
        out.push(cloneDoc(doc)); // the shared example job ClusterRoles
      }
    }
  }
  return out;
}

export async function installBrokerRbac(
  namespaces: string[],
  opts: BrokerRbacOptions = {},
): Promise<BrokerRbac> {
  const brokerNamespace = opts.brokerNamespace ?? uniqueName('k8s-ea-broker');
  const core = coreApi();
  let createdNamespace = false;
  try {
    await core.readNamespace({ name: brokerNamespace });
  } catch {
    await core.createNamespace({
      body: { metadata: { name: brokerNamespace, labels: { 'k8s-ephemeral-access.test/owner': 'jest' } } },
    });
    createdNamespace = true;
  }
  const docs = renderBrokerRbac(namespaces, brokerNamespace, opts.jobClusterRoles, opts.inlineRoles);
  const appliedYaml = docs.map((d) => dump(d)).join('---\n');
  applyIdempotently(appliedYaml);

  const tr = await core.createNamespacedServiceAccountToken({
    name: DEPLOY_BROKER_SA,
    namespace: brokerNamespace,
    body: { spec: { audiences: [], expirationSeconds: opts.tokenSeconds ?? 3600 } },
  });
  const token = tr.status!.token!;
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-broker-rbac-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  const { server, caData } = clusterEndpoint();
  writeFileSync(
    kubeconfigPath,
    dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': caData } }],
      users: [{ name: DEPLOY_BROKER_SA, user: { token } }],
      contexts: [
        { name: 'broker', context: { cluster: 'local', user: DEPLOY_BROKER_SA, namespace: brokerNamespace } },
      ],
      'current-context': 'broker',
    }),
    { mode: 0o600 },
  );
  const remove = (d: K8sDoc) =>
    tryKubectlAdmin([
      ...(d.metadata.namespace ? ['-n', d.metadata.namespace] : []),
      'delete',
      d.kind.toLowerCase(),
      d.metadata.name,
      '--ignore-not-found',
      '--wait=false',
    ]);
  return {
    brokerNamespace,
    serviceAccount: DEPLOY_BROKER_SA,
    kubeconfigPath,
    token,
    appliedYaml,
    async cleanup() {
      // Never the shared example ClusterRoles: other test files running now bind them.
      for (const d of docs)
        if (!d.metadata.namespace && d.metadata.name.startsWith('k8s-ea-broker')) remove(d);
      for (const d of docs)
        if (d.metadata.namespace && !(createdNamespace && d.metadata.namespace === brokerNamespace))
          remove(d);
      if (createdNamespace) await core.deleteNamespace({ name: brokerNamespace }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
