// deploy/ against the real API server: the kustomize base's content, and the broker's own token (under
// exactly that RBAC) can do its job and is denied everything beyond it. Applying deploy/ to a fresh
// cluster for real, and serving an exchange from what it applied: fresh-cluster.cluster.test.ts.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, loadAll } from 'js-yaml';
import { freshNamespace, kubectl, kubectlAdmin, kubectlStatus } from '../../../test/support/cluster.js';
import {
  installBrokerRbac,
  readDeployDocs,
  RBAC_FILES,
  type BrokerRbac,
} from '../../../test/support/deploy-rbac.js';
import { repoRoot } from '../../../test/support/repo-root.js';

let ns: { name: string; remove: () => Promise<void> };
let other: { name: string; remove: () => Promise<void> };
let rbac: BrokerRbac;

beforeAll(async () => {
  ns = await freshNamespace('deploy-job');
  other = await freshNamespace('deploy-other');
  rbac = await installBrokerRbac([ns.name]);
  // A pod to try exec on (never scheduled: there are no nodes; authorization comes first anyway).
  kubectlAdmin(['-n', ns.name, 'run', 'target', '--image=registry.invalid/x:1', '--restart=Never']);
});
afterAll(async () => {
  await rbac?.cleanup();
  await Promise.all([ns?.remove(), other?.remove()]);
});

const can = (args: string[]): string =>
  kubectl(rbac.kubeconfigPath, ['auth', 'can-i', ...args]).stdout.trim();

describe('kustomize base', () => {
  test('the Deployment runs 2 restricted replicas with probes', () => {
    const rendered = spawnSync('kubectl', ['kustomize', join(repoRoot, 'deploy')], { encoding: 'utf8' });
    expect(rendered.status).toBe(0);
    const docs = loadAll(rendered.stdout) as { kind: string; spec?: any }[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    expect(dep.spec.replicas).toBe(2);
    const pod = dep.spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.automountServiceAccountToken).toBe(true);
    const c = pod.containers[0];
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    // The ConfigMaps the Deployment mounts are the generated ones (kustomize rewrote the config's name;
    // the policy's is fixed), projected into one directory.
    const cms = docs.filter((d) => d.kind === 'ConfigMap') as unknown as {
      metadata: { name: string };
      data: Record<string, string>;
    }[];
    const sources = pod.volumes.find((v: { name: string }) => v.name === 'config').projected.sources as {
      configMap: { name: string };
    }[];
    expect(sources.map((x) => x.configMap.name).sort()).toEqual(cms.map((x) => x.metadata.name).sort());
    const cm = { data: Object.assign({}, ...cms.map((x) => x.data)) as Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['broker-config.yaml', 'policy.yaml']);
    expect(load(cm.data['policy.yaml']!)).toMatchObject({ kind: 'Policy' });
    // Metrics have a port of their own, which the Service does not expose and the NetworkPolicy
    // opens to one namespace only.
    const config = load(cm.data['broker-config.yaml']!) as {
      listen: { port: number };
      internalListen: { port: number };
    };
    expect(config.internalListen.port).not.toBe(config.listen.port);
    expect(c.ports).toEqual(
      expect.arrayContaining([{ name: 'metrics', containerPort: config.internalListen.port }]),
    );
    const svc = docs.find((d) => d.kind === 'Service')!;
    expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['https', 'gateway']);
    const np = docs.find((d) => d.kind === 'NetworkPolicy')!;
    for (const rule of np.spec.ingress as { from?: unknown[]; ports: { port: number }[] }[])
      if (rule.ports.some((p) => p.port === config.internalListen.port))
        expect(rule.from?.length).toBeGreaterThan(0);
  });

  test('the gateway port (8444) is in the Service and the Deployment; the probes stay on https', () => {
    const docs = renderedDeploy();
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    const c = dep.spec.template.spec.containers[0];
    expect(c.ports).toEqual(expect.arrayContaining([{ name: 'gateway', containerPort: 8444 }]));
    expect(c.readinessProbe.httpGet).toMatchObject({ port: 'https', scheme: 'HTTPS' });
    expect(c.livenessProbe.httpGet).toMatchObject({ port: 'https', scheme: 'HTTPS' });
    const svc = docs.find((d) => d.kind === 'Service')!;
    expect(svc.spec.ports).toEqual(
      expect.arrayContaining([{ name: 'gateway', port: 8444, targetPort: 'gateway' }]),
    );
    // Every Service port is a named container port, and metrics are none of them.
    const named = new Set(c.ports.map((p: { name: string }) => p.name));
    for (const p of svc.spec.ports as { targetPort: string }[]) expect(named.has(p.targetPort)).toBe(true);
    expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).not.toContain('metrics');
  });

  test('the NetworkPolicy: runners reach 8443 and 8444; egress is DNS, the API server and HTTPS only', () => {
    type Peer = { ipBlock?: { cidr: string; except?: string[] }; namespaceSelector?: unknown };
    type Rule = { from?: Peer[]; to?: Peer[]; ports?: { protocol: string; port: number }[] };
    const np = renderedDeploy().find((d) => d.kind === 'NetworkPolicy')!;
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingress = np.spec.ingress as Rule[];
    const open = ingress.filter((r) => !r.from).flatMap((r) => r.ports!.map((p) => p.port));
    expect(open.sort()).toEqual([8443, 8444]);
    const egress = np.spec.egress as Rule[];
    // No rule without ports: nothing may reach every port of anything.
    for (const rule of egress) expect(rule.ports?.length).toBeGreaterThan(0);
    const ports = egress.map((r) => r.ports!.map((p) => `${p.protocol}/${p.port}`).sort());
    expect(ports).toEqual([['TCP/53', 'UDP/53'], ['TCP/443', 'TCP/6443'], ['TCP/443']]);
    // The API server rule is the one place for the cluster's own addresses, and the file says so.
    expect(egress[1]!.to!.map((p) => p.ipBlock!.cidr)).toEqual(['0.0.0.0/0', '::/0']);
    const text = readFileSync(join(repoRoot, 'deploy/networkpolicy.yaml'), 'utf8');
    expect(text.match(/cidr: \S+ # API_SERVER_CIDR/g)).toHaveLength(2);
    // The issuer rule keeps cluster-internal and metadata addresses out.
    const issuer = egress[2]!.to!.flatMap((p) => p.ipBlock!.except ?? []);
    for (const internal of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', 'fc00::/7'])
      expect(issuer).toContain(internal);
  });

  test('the broker RBAC has no wildcard, escalate, impersonate or secrets rule, and bind only by name', () => {
    const rules = RBAC_FILES.filter((f) => f !== 'job-clusterroles.yaml')
      .flatMap(readDeployDocs)
      .flatMap(
        (d) =>
          (d.rules ?? []) as {
            apiGroups: string[];
            resources: string[];
            verbs: string[];
            resourceNames?: string[];
          }[],
      );
    expect(rules.length).toBeGreaterThan(3);
    for (const r of rules) {
      expect([...r.apiGroups, ...r.resources, ...r.verbs]).not.toContain('*');
      expect(r.verbs).not.toContain('escalate');
      expect(r.verbs).not.toContain('impersonate');
      expect(r.resources).not.toContain('secrets');
      if (r.verbs.includes('bind')) {
        expect(r.verbs).toEqual(['bind']);
        expect(r.resourceNames?.length).toBeGreaterThan(0);
        for (const powerful of ['cluster-admin', 'admin', 'edit', 'system:masters'])
          expect(r.resourceNames).not.toContain(powerful);
      }
    }
    const crbs = RBAC_FILES.flatMap(readDeployDocs).filter((d) => d.kind === 'ClusterRoleBinding');
    expect(crbs.map((d) => d.roleRef!.name).sort()).toEqual([
      'k8s-ea-broker-role-reader',
      'k8s-ea-broker-tokenreview',
    ]);
    // The cluster-wide read of roles covers exactly the ClusterRoles the broker may bind (in any namespace).
    const bindable = rules.filter((r) => r.verbs.includes('bind') && r.resources.includes('clusterroles'));
    const bindableNames = [...new Set(bindable.flatMap((r) => r.resourceNames!))].sort();
    const readable = rules.filter((r) => r.resources.includes('clusterroles') && !r.verbs.includes('bind'));
    expect(readable).toEqual([
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['clusterroles'],
        verbs: ['get', 'watch'],
        resourceNames: bindableNames,
      },
    ]);
  });
});

/** A rendered object; its spec is read as the test needs it. */
type DeployDoc = { kind: string; spec?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `kubectl kustomize deploy/`, parsed. */
function renderedDeploy(): DeployDoc[] {
  const rendered = spawnSync('kubectl', ['kustomize', join(repoRoot, 'deploy')], { encoding: 'utf8' });
  expect(rendered.status).toBe(0);
  return loadAll(rendered.stdout) as DeployDoc[];
}

describe("the broker's own token (deploy/ RBAC)", () => {
  test('can do its job in the job namespace and hold its Lease', () => {
    for (const a of [
      ['create', 'serviceaccounts'],
      ['delete', 'serviceaccounts'],
      // The gateway's live-grant table.
      ['watch', 'serviceaccounts'],
      ['create', 'serviceaccounts/token'],
      ['create', 'rolebindings'],
      ['delete', 'rolebindings'],
      ['create', 'roles'],
    ])
      expect([a.join(' '), can([...a, '-n', ns.name])]).toEqual([a.join(' '), 'yes']);
    expect(can(['bind', 'clusterroles/k8s-ea-deployer', '-n', ns.name])).toBe('yes');
    expect(can(['update', 'leases', '-n', rbac.brokerNamespace])).toBe('yes');
    expect(can(['watch', 'leases', '-n', rbac.brokerNamespace])).toBe('yes');
    expect(can(['watch', 'serviceaccounts', '-n', other.name])).toBe('no');
    expect(can(['create', 'tokenreviews.authentication.k8s.io'])).toBe('yes');
    expect(can(['get', 'clusterroles/k8s-ea-deployer'])).toBe('yes');
    expect(can(['watch', 'clusterroles/k8s-ea-viewer'])).toBe('yes');
  });

  test('is denied secrets, exec, cluster-wide bindings, impersonation, escalation and other namespaces', () => {
    const kc = rbac.kubeconfigPath;
    const deny = (args: string[]) =>
      expect([args.join(' '), kubectlStatus(kc, args)]).toEqual([
        args.join(' '),
        expect.objectContaining({ ok: false, status: 403 }),
      ]);
    deny(['-n', ns.name, 'get', 'secrets']);
    deny(['-n', ns.name, 'create', 'secret', 'generic', 's', '--from-literal=a=b']);
    deny(['-n', ns.name, 'get', 'pods']);
    deny(['-n', other.name, 'get', 'serviceaccounts']);
    deny(['-n', other.name, 'create', 'serviceaccount', 'x']);
    deny(['create', 'clusterrolebinding', 'x', '--clusterrole=view', '--user=someone']);
    deny(['-n', ns.name, 'create', 'rolebinding', 'x', '--clusterrole=cluster-admin', '--user=someone']);
    // (Not 'admin': without the aggregation controller it is empty here, so binding it escalates nothing.)
    deny([
      '-n',
      ns.name,
      'create',
      'rolebinding',
      'y',
      '--clusterrole=system:kube-scheduler',
      '--user=someone',
    ]);
    deny(['-n', ns.name, 'create', 'role', 'esc', '--verb=get', '--resource=secrets']);
    deny(['-n', ns.name, 'get', 'pods', '--as=system:admin']);
    deny(['-n', ns.name, 'get', 'leases']);
    // Reading roles stops at the ClusterRoles the policy binds.
    deny(['get', 'clusterrole', 'cluster-admin']);
    deny(['get', 'clusterroles']);
    const exec = kubectlStatus(kc, ['-n', ns.name, 'exec', 'target', '--', 'true']);
    expect(exec.ok).toBe(false);
    expect(exec.status).toBe(403);
    for (const a of [
      ['create', 'pods/exec'],
      ['impersonate', 'serviceaccounts'],
      ['escalate', 'roles'],
      ['bind', 'clusterroles/cluster-admin'],
    ])
      expect([a.join(' '), can([...a, '-n', ns.name])]).toEqual([a.join(' '), 'no']);
  });
});
