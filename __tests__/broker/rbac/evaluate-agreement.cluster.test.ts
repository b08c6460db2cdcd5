// The in-memory RBAC evaluator (src/broker/rbac/evaluate.ts) against the API server's own RBAC
// authorizer: generated rule sets become Roles (bound in one namespace) and ClusterRoles (bound
// cluster-wide), each bound to its own ServiceAccount; generated requests go to the API server as
// SubjectAccessReviews for that ServiceAccount (user only, no groups, so the default bindings of
// system:authenticated do not blur the answer), and every answer must equal the evaluator's.
// The vocabulary is small and overlapping on purpose (wildcards, `*/status`, `pods/*`, case,
// resourceNames with list, other namespaces, non-resource URL prefixes) so that most pairs sit
// near an edge. K8S_EA_RBAC_SEED picks another generated set.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import {
  rbacAllows,
  type RbacRequest,
  type RbacRule,
  type ScopedRules,
} from '../../../src/broker/rbac/evaluate.js';
import {
  adminConfig,
  coreApi,
  freshNamespace,
  rbacApi,
  uniqueName,
  waitFor,
} from '../../../test/support/cluster.js';

const SEED = Number(process.env.K8S_EA_RBAC_SEED ?? 25);
const NAMESPACED_SETS = 6;
const CLUSTER_SETS = 2;
const REQUESTS_PER_SET = 320;
const IN_FLIGHT = 16;
/** A rule in every set that no generated request uses: tells when the bindings are in effect. */
const CANARY: RbacRule = { apiGroups: ['canary.test'], resources: ['canaries'], verbs: ['get'] };

/** mulberry32: a small seeded generator, so a disagreement can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = random(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const some = <T>(xs: readonly T[], max: number): T[] => {
  const n = 1 + Math.floor(rnd() * max);
  return [...new Set(Array.from({ length: n }, () => pick(xs)))];
};
const chance = (p: number) => rnd() < p;

const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'use'];
const GROUPS = ['', 'apps', 'batch', 'example.com', 'Apps'];
const RESOURCES = ['pods', 'deployments', 'configmaps', 'jobs', 'widgets', 'Pods'];
const SUBRESOURCES = ['status', 'log', 'scale'];
const NAMES = ['web', 'db', 'Web'];
const RULE_RESOURCES = [
  ...RESOURCES,
  'pods/log',
  'pods/status',
  'deployments/scale',
  'jobs/status',
  '*/status',
  '*/scale',
  'pods/*',
  '*',
];
const URLS = ['/x-test/a', '/x-test/a/b', '/x-test/b/', '/x-test/b', '/x-test', '/other'];
const RULE_URLS = ['/x-test/a', '/x-test/*', '/x-test/b/*', '/x-test/b*', '/other', '*'];

function resourceRule(): RbacRule {
  const rule: RbacRule = {
    verbs: chance(0.1) ? ['*'] : some(VERBS, 3),
    apiGroups: chance(0.1) ? ['*'] : some(GROUPS, 2),
    resources: some(RULE_RESOURCES, 3),
  };
  return chance(0.3) ? { ...rule, resourceNames: some([...NAMES, ''], 2) } : rule;
}

const urlRule = (): RbacRule => ({
  verbs: chance(0.1) ? ['*'] : some(['get', 'post', 'put', 'delete'], 2),
  nonResourceURLs: some(RULE_URLS, 2),
});

function ruleSet(clusterWide: boolean): RbacRule[] {
  const n = 8 + Math.floor(rnd() * 8);
  const rules = Array.from({ length: n }, () => (clusterWide && chance(0.3) ? urlRule() : resourceRule()));
  return [...rules, CANARY];
}

function request(ns: string, clusterWide: boolean): RbacRequest {
  if (clusterWide && chance(0.25)) return { verb: pick(['get', 'post', 'put', 'delete']), path: pick(URLS) };
  const r: RbacRequest = {
    verb: pick(VERBS),
    apiGroup: pick(GROUPS),
    resource: pick(RESOURCES),
    namespace: chance(0.75) ? ns : pick(['elsewhere', '']),
  };
  if (chance(0.4)) r.subresource = pick(SUBRESOURCES);
  if (chance(0.6)) r.name = pick(NAMES);
  return r;
}

interface Subject {
  user: string;
  scope: ScopedRules;
}

let ns: { name: string; remove: () => Promise<void> };
const subjects: Subject[] = [];
const clusterObjects: string[] = [];

function reviewOf(user: string, r: RbacRequest): object {
  const spec =
    r.path !== undefined
      ? { user, nonResourceAttributes: { verb: r.verb, path: r.path } }
      : {
          user,
          resourceAttributes: {
            verb: r.verb,
            group: r.apiGroup,
            resource: r.resource,
            subresource: r.subresource,
            namespace: r.namespace,
            name: r.name,
          },
        };
  return { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec };
}

/** SubjectAccessReviews over kept-alive connections (client-node opens one per call: 4× slower here). */
async function reviewer(): Promise<(user: string, r: RbacRequest) => Promise<boolean>> {
  const kc = adminConfig();
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const { ca, cert, key } = options;
  const agent = new Agent({ ca, cert, key, keepAlive: true, maxSockets: IN_FLIGHT });
  const url = new URL('/apis/authorization.k8s.io/v1/subjectaccessreviews', kc.getCurrentCluster()!.server);
  return (user, r) =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          ...options,
          agent,
          method: 'POST',
          headers: { ...options.headers, 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            if (res.statusCode !== 201)
              reject(new Error(`SubjectAccessReview: HTTP ${res.statusCode}: ${text}`));
            else resolve((JSON.parse(text) as { status?: { allowed?: boolean } }).status?.allowed === true);
          });
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(reviewOf(user, r)));
    });
}
let apiServerAllows: (user: string, r: RbacRequest) => Promise<boolean>;

async function bindSet(index: number, clusterWide: boolean): Promise<Subject> {
  const rbac = rbacApi();
  const sa = `sa-${index}`;
  await coreApi().createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: sa } } });
  const rules = ruleSet(clusterWide);
  const subject = [{ kind: 'ServiceAccount', name: sa, namespace: ns.name }];
  if (clusterWide) {
    const name = uniqueName('rbac-agree');
    clusterObjects.push(name);
    await rbac.createClusterRole({ body: { metadata: { name }, rules: rules as never } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: subject,
      },
    });
  } else {
    await rbac.createNamespacedRole({
      namespace: ns.name,
      body: { metadata: { name: sa }, rules: rules as never },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns.name,
      body: {
        metadata: { name: sa },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
        subjects: subject,
      },
    });
  }
  return {
    user: `system:serviceaccount:${ns.name}:${sa}`,
    scope: clusterWide ? { rules } : { namespace: ns.name, rules },
  };
}

beforeAll(async () => {
  ns = await freshNamespace('rbac-agree');
  for (let i = 0; i < NAMESPACED_SETS + CLUSTER_SETS; i++)
    subjects.push(await bindSet(i, i >= NAMESPACED_SETS));
  apiServerAllows = await reviewer();
  for (const s of subjects)
    await waitFor(`the bindings of ${s.user}`, async () =>
      (await apiServerAllows(s.user, {
        verb: 'get',
        apiGroup: 'canary.test',
        resource: 'canaries',
        namespace: ns.name,
        name: 'c',
      }))
        ? true
        : undefined,
    );
}, 120_000);

afterAll(async () => {
  const rbac = rbacApi();
  for (const name of clusterObjects) {
    await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await rbac.deleteClusterRole({ name }).catch(() => undefined);
  }
  await ns?.remove();
});

test(`the evaluator agrees with the API server's RBAC authorizer on ${(NAMESPACED_SETS + CLUSTER_SETS) * REQUESTS_PER_SET} generated pairs`, async () => {
  const pairs = subjects.flatMap((s) =>
    Array.from({ length: REQUESTS_PER_SET }, () => ({
      s,
      r: request(ns.name, s.scope.namespace === undefined),
    })),
  );
  const started = Date.now();
  const disagreements: unknown[] = [];
  let allowed = 0;
  let next = 0;
  const worker = async () => {
    while (next < pairs.length) {
      const { s, r } = pairs[next++]!;
      const server = await apiServerAllows(s.user, r);
      const ours = rbacAllows([s.scope], r);
      if (server) allowed += 1;
      if (server !== ours) disagreements.push({ server, ours, request: r, rules: s.scope });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const ms = Date.now() - started;
  console.log(
    `rbac agreement (seed ${SEED}): ${pairs.length} SubjectAccessReviews over ${subjects.length} rule sets, ` +
      `${allowed} allowed, ${pairs.length - allowed} denied, ${disagreements.length} disagreements, ${ms} ms`,
  );
  expect(disagreements.slice(0, 5)).toEqual([]);
  expect(pairs.length).toBeGreaterThanOrEqual(2000);
  // Both answers are well represented, or agreement would prove little.
  expect(allowed).toBeGreaterThan(pairs.length * 0.1);
  expect(pairs.length - allowed).toBeGreaterThan(pairs.length * 0.1);
}, 300_000);
