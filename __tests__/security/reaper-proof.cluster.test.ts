// The reaper cannot be steered (issue 10, item 4), against the real API server with the broker under
// the deploy/ RBAC. Anyone who may create ServiceAccounts in a job namespace can write the broker's
// labels; the reaper must delete only what the broker's own JWT-use records and the grant's
// ownerReferences prove is a grant (or a root whose record never landed, grant-proof.ts), keep
// reaping when one namespace fails, and still find grants in a namespace that has left the policy.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { ExchangeRequest, ExchangeResponse } from '../../src/shared/api.js';
import { BrokerError } from '../../src/shared/errors.js';
import type { PolicyEngine, VerifiedClaims } from '../../src/broker/types.js';
import { startOidcIssuer, type OidcIssuer } from '../../test/support/oidc-issuer.js';
import {
  coreApi,
  freshNamespace,
  kubectl,
  rbacApi,
  tokenKubeconfig,
  waitFor,
} from '../../test/support/cluster.js';
import { installBrokerRbac, type BrokerRbac } from '../../test/support/deploy-rbac.js';
import { managedObjects } from '../../test/support/managed-objects.js';
import { startInProcessBroker } from '../../test/support/in-process-broker.js';
import { UNRECORDED_ROOT_GRACE_MS } from '../../src/broker/grants/grant-proof.js';

type Namespace = { name: string; remove: () => Promise<void> };
type Broker = Awaited<ReturnType<typeof startInProcessBroker>>;

const REPO_ID = '424242';
const BROKER_ROLE = 'k8s-ea-broker'; // the broker's own Role and RoleBinding in every job namespace
const EXPIRED = '2020-01-01T00:00:00Z';

let issuer: OidcIssuer;
const namespaces: Namespace[] = [];
const rbacs: BrokerRbac[] = [];
const brokers: Broker[] = [];
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  issuer = await startOidcIssuer();
  issuer.claims.repository_id = REPO_ID;
});
afterAll(async () => {
  for (const b of brokers) await b.stop().catch(() => undefined);
  cleanups.forEach((c) => c());
  await issuer?.close();
  for (const r of rbacs) await r.cleanup();
  await Promise.all(namespaces.map((n) => n.remove()));
});

async function namespace(prefix: string): Promise<string> {
  const n = await freshNamespace(prefix);
  namespaces.push(n);
  return n.name;
}

async function brokerRbac(jobNamespaces: string[]): Promise<BrokerRbac> {
  const r = await installBrokerRbac(jobNamespaces);
  rbacs.push(r);
  return r;
}

/** Grants the viewer ClusterRole in any of `granting`; the reaper is told about `listed` only. */
function policy(granting: string[], listed = granting): PolicyEngine {
  return {
    namespaces: () => listed,
    namedRoles: () => [{ kind: 'ClusterRole', name: 'k8s-ea-viewer' }],
    sourceAllowed: () => true,
    authorize(claims: VerifiedClaims, req: ExchangeRequest) {
      if (claims.repository_id !== REPO_ID || !granting.includes(req.namespace) || req.role !== 'viewer')
        throw new BrokerError('ERR_FORBIDDEN', 'no_matching_rule');
      const roleRef = { kind: 'ClusterRole' as const, name: 'k8s-ea-viewer' };
      return {
        ruleName: 'reaper-proof',
        namespace: req.namespace,
        role: 'viewer',
        roleRef,
        rules: [],
        ttlSeconds: req.ttlSeconds ?? 300,
      };
    },
  };
}

async function startBroker(rbac: BrokerRbac, p: PolicyEngine): Promise<Broker> {
  const b = await startInProcessBroker({ issuer: issuer.issuer, policy: p, rbac, reaperIntervalSeconds: 1 });
  brokers.push(b);
  return b;
}

/** A real grant through the broker, with its self-revoke objects in place. */
async function grant(broker: Broker, ns: string, ttlSeconds: number): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await issuer.sign(),
    body: { namespace: ns, role: 'viewer', ttlSeconds },
  });
  expect(r.status).toBe(200);
  await waitFor('the self-revoke RoleBinding', () =>
    rbacApi()
      .readNamespacedRoleBinding({ name: `${r.body.grantId}-revoke`, namespace: ns })
      .then(
        () => true,
        () => undefined,
      ),
  );
  return r.body;
}

const grantObjects = (ns: string, grantId: string) =>
  managedObjects([ns]).filter((o) => o.includes(`/${grantId}`));

const waitReaped = (ns: string, grantId: string) =>
  waitFor(
    `the reaper to delete ${grantId}`,
    () => (grantObjects(ns, grantId).length === 0 ? true : undefined),
    30_000,
    250,
  );

/** Waits until the reaper (renewing its Lease once a pass) has made `passes` more passes. */
async function morePasses(rbac: BrokerRbac, passes: number): Promise<void> {
  const { CoordinationV1Api } = await import('@kubernetes/client-node');
  const { adminConfig } = await import('../../test/support/cluster.js');
  const leases = adminConfig().makeApiClient(CoordinationV1Api);
  const renewed = async () =>
    (await leases.readNamespacedLease({ name: 'k8s-ea-reaper', namespace: rbac.brokerNamespace })).spec
      ?.renewTime;
  let last = String(await renewed());
  for (let seen = 0; seen < passes;) {
    await waitFor('a reaper pass', async () => {
      const now = String(await renewed());
      return now !== last ? now : undefined;
    }).then((now) => {
      last = now;
      seen += 1;
    });
  }
}

/** A co-tenant: a ServiceAccount of the job namespace that may create ServiceAccounts and Roles (a Helm chart's CI). */
async function coTenant(ns: string): Promise<string> {
  const name = 'helm-ci';
  await coreApi().createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  await rbacApi().createNamespacedRole({
    namespace: ns,
    body: {
      metadata: { name },
      rules: [
        {
          apiGroups: ['', 'rbac.authorization.k8s.io'],
          resources: ['serviceaccounts', 'roles'],
          verbs: ['create'],
        },
      ],
    },
  });
  await rbacApi().createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
  });
  const tr = await coreApi().createNamespacedServiceAccountToken({
    name,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const kc = tokenKubeconfig(tr.status!.token!, ns);
  cleanups.push(kc.cleanup);
  return kc.path;
}

function applyAs(kubeconfig: string, manifest: Record<string, unknown>): void {
  const r = kubectl(kubeconfig, ['create', '-f', '-'], JSON.stringify(manifest));
  if (r.status !== 0) throw new Error(`kubectl create failed: ${r.stderr}`);
}

/** A ServiceAccount wearing every label and annotation the reaper used to trust, long expired. */
const forgedGrant = (name: string) => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: {
    name,
    labels: { 'app.kubernetes.io/managed-by': 'k8s-ephemeral-access', 'k8s-ephemeral-access.io/grant': name },
    annotations: { 'k8s-ephemeral-access.io/expires-at': EXPIRED },
  },
});
const emptyRole = (name: string) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name },
  rules: [],
});

const exists = (read: () => Promise<unknown>) =>
  read().then(
    () => true,
    () => false,
  );

describe('a forged grant ServiceAccount', () => {
  test("deletes nothing (not the broker's Role, not a look-alike grant, not an object the grant does not own), and is logged once", async () => {
    const ns = await namespace('reap-forged');
    const rbac = await brokerRbac([ns]);
    const broker = await startBroker(rbac, policy([ns]));
    const tenant = await coTenant(ns);

    const lookAlike = `gha-${randomBytes(16).toString('hex')}`; // a valid grant id with no record behind it
    applyAs(tenant, forgedGrant(BROKER_ROLE));
    applyAs(tenant, forgedGrant(lookAlike));
    applyAs(tenant, emptyRole(lookAlike));
    // A real grant that expires now, and an object named like its inline Role that it does not own.
    const real = await grant(broker, ns, 2);
    applyAs(tenant, emptyRole(real.grantId));

    await waitReaped(ns, real.grantId);
    await morePasses(rbac, 3);

    const rbacOf = rbacApi();
    expect(await exists(() => rbacOf.readNamespacedRole({ name: BROKER_ROLE, namespace: ns }))).toBe(true);
    expect(await exists(() => rbacOf.readNamespacedRoleBinding({ name: BROKER_ROLE, namespace: ns }))).toBe(
      true,
    );
    expect(await exists(() => rbacOf.readNamespacedRole({ name: lookAlike, namespace: ns }))).toBe(true);
    expect(await exists(() => rbacOf.readNamespacedRole({ name: real.grantId, namespace: ns }))).toBe(true);
    for (const name of [BROKER_ROLE, lookAlike])
      expect(await exists(() => coreApi().readNamespacedServiceAccount({ name, namespace: ns }))).toBe(true);
    // The broker still works in that namespace.
    const after = await grant(broker, ns, 300);
    expect(
      (await broker.request('DELETE', `/v1/grants/${after.grantId}`, { token: after.token })).status,
    ).toBe(200);

    const logged = (name: string) =>
      broker.logLines.filter((l) => l.namespace === ns && l.serviceAccount === name && l.level === 'warn');
    for (const name of [BROKER_ROLE, lookAlike]) {
      expect(logged(name)).toHaveLength(1);
      expect(logged(name)[0]!.msg).toMatch(/not a grant of this broker/);
    }
    const unowned = broker.logLines.filter((l) => l.namespace === ns && l.object === `Role/${real.grantId}`);
    expect(unowned).toHaveLength(1);
    expect(unowned[0]!.msg).toMatch(/not owned by the grant/);
    expect(broker.auditLines.filter((l) => l.action === 'reap').map((l) => l.grantId)).toEqual([
      real.grantId,
    ]);
  });
});

describe('a root whose JWT-use record never landed (grant-root.ts)', () => {
  test("is deleted once older than its grace when it names this broker's ledger; another broker's stays", async () => {
    const ns = await namespace('reap-unrecorded');
    const rbac = await brokerRbac([ns]);
    const broker = await startBroker(rbac, policy([ns]));
    const tenant = await coTenant(ns);
    // What a broker killed between its two writes leaves: a grant id, the ledger annotation, no record.
    const unrecorded = `gha-${randomBytes(16).toString('hex')}`;
    const othersLedger = `gha-${randomBytes(16).toString('hex')}`;
    const withLedger = (name: string, ledger: string) => {
      const sa = forgedGrant(name);
      return {
        ...sa,
        metadata: {
          ...sa.metadata,
          annotations: { ...sa.metadata.annotations, 'k8s-ephemeral-access.io/ledger-namespace': ledger },
        },
      };
    };
    const created = Date.now();
    applyAs(tenant, withLedger(unrecorded, rbac.brokerNamespace));
    applyAs(tenant, withLedger(othersLedger, 'another-broker'));

    await morePasses(rbac, 2);
    // Young: an exchange may still be writing its record. Left alone, and not called a forgery.
    expect(
      await exists(() => coreApi().readNamespacedServiceAccount({ name: unrecorded, namespace: ns })),
    ).toBe(true);
    await waitFor(
      `the reaper to delete ${unrecorded}`,
      () =>
        exists(() => coreApi().readNamespacedServiceAccount({ name: unrecorded, namespace: ns })).then((e) =>
          e ? undefined : true,
        ),
      UNRECORDED_ROOT_GRACE_MS + 30_000,
      500,
    );
    expect(Date.now() - created).toBeGreaterThanOrEqual(UNRECORDED_ROOT_GRACE_MS - 2000);
    expect(
      await exists(() => coreApi().readNamespacedServiceAccount({ name: othersLedger, namespace: ns })),
    ).toBe(true);
    const reaps = broker.auditLines.filter((l) => l.action === 'reap');
    expect(reaps.map((l) => [l.grantId, l.unrecorded])).toEqual([[unrecorded, true]]);
    const forged = broker.logLines.filter(
      (l) => l.namespace === ns && /not a grant of this broker/.test(String(l.msg)),
    );
    expect(forged.map((l) => l.serviceAccount)).toEqual([othersLedger]);
  }, 120_000);
});

describe('a namespace the reaper cannot read', () => {
  test("does not stop reaping elsewhere: the broker's Role missing in one namespace is logged and counted", async () => {
    const broken = await namespace('reap-broken');
    const fine = await namespace('reap-fine');
    const rbac = await brokerRbac([broken, fine]);
    const broker = await startBroker(rbac, policy([broken, fine]));
    await rbacApi().deleteNamespacedRole({ name: BROKER_ROLE, namespace: broken });

    const g = await grant(broker, fine, 2);
    await waitReaped(fine, g.grantId);
    const failures = broker.logLines.filter((l) => l.namespace === broken && l.level === 'error');
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(String(failures[0]!.error)).toMatch(/HTTP 403/);
    expect(await broker.metrics.registry.metrics()).toMatch(
      new RegExp(`k8s_ea_reap_namespace_failures_total\\{namespace="${broken}"\\} [1-9]`),
    );
  });
});

describe('a namespace removed from the policy', () => {
  test('its grants are still reaped: the JWT-use records name their namespace', async () => {
    const kept = await namespace('reap-kept');
    const dropped = await namespace('reap-dropped');
    const rbac = await brokerRbac([kept, dropped]);
    const before = await startBroker(rbac, policy([kept, dropped]));
    const g = await grant(before, dropped, 4);
    await before.stop();
    expect(grantObjects(dropped, g.grantId)).toHaveLength(4);

    const after = await startBroker(rbac, policy([kept]));
    await waitReaped(dropped, g.grantId);
    // The reaper writes its audit line once its last delete call has returned, which can be after
    // the listing above already saw the objects gone.
    const reaped = await waitFor('the reap audit line', () =>
      after.auditLines.find((l) => l.action === 'reap'),
    );
    expect(reaped).toMatchObject({
      grantId: g.grantId,
      namespace: dropped,
      by: 'reaper',
    });
  });
});
