// deploy/ against the real API server: the kustomize base's content, and the broker's own token (under
// exactly that RBAC) can do its job and is denied everything beyond it. Applying deploy/ to a fresh
// cluster for real, and serving an exchange from what it applied: fresh-cluster.test.ts.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
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
    // The ConfigMap the Deployment mounts is the generated one (kustomize rewrote the name).
    const cm = docs.find((d) => d.kind === 'ConfigMap') as unknown as {
      metadata: { name: string };
      data: Record<string, string>;
    };
    expect(pod.volumes.find((v: { name: string }) => v.name === 'config').configMap.name).toBe(
      cm.metadata.name,
    );
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
    expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['https']);
    const np = docs.find((d) => d.kind === 'NetworkPolicy')!;
    for (const rule of np.spec.ingress as { from?: unknown[]; ports: { port: number }[] }[])
      if (rule.ports.some((p) => p.port === config.internalListen.port))
        expect(rule.from?.length).toBeGreaterThan(0);
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
    // The cluster-wide read of roles covers exactly the ClusterRoles the broker may bind.
    const bindable = rules.filter((r) => r.verbs.includes('bind') && r.resources.includes('clusterroles'));
    const readable = rules.filter((r) => r.resources.includes('clusterroles') && !r.verbs.includes('bind'));
    expect(readable).toEqual([
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        resources: ['clusterroles'],
        verbs: ['get', 'watch'],
        resourceNames: bindable.flatMap((r) => r.resourceNames!),
      },
    ]);
  });
});

describe("the broker's own token (deploy/ RBAC)", () => {
  test('can do its job in the job namespace and hold its Lease', () => {
    for (const a of [
      ['create', 'serviceaccounts'],
      ['delete', 'serviceaccounts'],
      ['create', 'serviceaccounts/token'],
      ['create', 'rolebindings'],
      ['delete', 'rolebindings'],
      ['create', 'roles'],
    ])
      expect([a.join(' '), can([...a, '-n', ns.name])]).toEqual([a.join(' '), 'yes']);
    expect(can(['bind', 'clusterroles/k8s-ea-deployer', '-n', ns.name])).toBe('yes');
    expect(can(['update', 'leases', '-n', rbac.brokerNamespace])).toBe('yes');
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
