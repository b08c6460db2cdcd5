// Live grants made cheaply, for the growth scenario: each grant's real objects (the broker's own
// builders, through grant-floor.ts's grantBodies: JWT-use record, ServiceAccount, access
// RoleBinding, self-revoke Role and RoleBinding) with a long expiry, created in parallel as the
// cluster admin. The admin skips the API server's RBAC escalation checks, which grow with the
// RoleBindings already in the namespace: the objects are the same, only making 10,000 of them is
// faster than through the broker's identity (or through exchanges). Each carries one more label,
// SEED_LABEL, so that the scenario removes exactly these and tells them from the grants its
// exchanges make.
import type { MinimalKubeClient } from './kube-client.js';
import { benchClaims, grantBodies, type GrantTarget } from './grant-floor.js';
import { closedLoop } from './stats.js';
import { INLINE_ROLE_PART, MANAGED_SELECTOR, PART_LABEL } from '../../src/broker/naming.js';
import { LEDGER_SELECTOR } from '../../src/broker/grants/replay-ledger.js';

export const SEED_LABEL = 'k8s-ephemeral-access.bench/growth-seed';
/** Far beyond any run: no live grant expires (and is reaped) while the scenario measures. */
export const SEED_TTL_SECONDS = 6 * 3600;
/** A repository id no bench policy rule names: seeds are never confused with the exchanges' grants. */
const SEED_REPOSITORY_ID = '700000099';
const CREATE_CONCURRENCY = 64;
const REMOVE_ATTEMPTS = 5;

const enc = encodeURIComponent;
const RBAC = '/apis/rbac.authorization.k8s.io/v1/namespaces';
const paths = (namespace: string) => ({
  serviceaccounts: `/api/v1/namespaces/${enc(namespace)}/serviceaccounts`,
  rolebindings: `${RBAC}/${enc(namespace)}/rolebindings`,
  roles: `${RBAC}/${enc(namespace)}/roles`,
});
const leases = (ledgerNamespace: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${enc(ledgerNamespace)}/leases`;

type Labelled = { metadata?: { labels?: Record<string, string> } };
const marked = <T extends Labelled>(o: T): T => ({
  ...o,
  metadata: { ...o.metadata, labels: { ...o.metadata?.labels, [SEED_LABEL]: 'true' } },
});

/** One live grant: [record ∥ ServiceAccount] → [access RoleBinding ∥ self-revoke Role ∥ its RoleBinding]. */
async function createLiveGrant(admin: MinimalKubeClient, t: GrantTarget, expiresAt: Date): Promise<void> {
  const b = grantBodies(benchClaims(t.issuer, SEED_REPOSITORY_ID), t, expiresAt);
  const p = paths(t.namespace);
  const [, sa] = await Promise.all([
    admin.json('POST', leases(t.ledgerNamespace), marked(b.lease)),
    admin.json<{ metadata: { uid: string } }>('POST', p.serviceaccounts, marked(b.serviceAccount)),
  ]);
  const uid = sa.metadata.uid;
  await Promise.all([
    admin.json('POST', p.rolebindings, marked(b.accessBinding(uid))),
    admin.json('POST', p.roles, marked(b.revokeRole(uid))),
    admin.json('POST', p.rolebindings, marked(b.revokeBinding(uid))),
  ]);
}

/** Grants each namespace holds when `total` are spread evenly over `count` namespaces. */
export function spreadCounts(total: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.floor(total / count) + (i < total % count ? 1 : 0));
}

/**
 * Adds live grants until each namespace holds its count of `want` (`have`: what each holds now).
 * Returns the new counts.
 */
export async function addLiveGrants(
  admin: MinimalKubeClient,
  targets: GrantTarget[],
  have: number[],
  want: number[],
  log: (msg: string) => void,
): Promise<number[]> {
  const queue: GrantTarget[] = [];
  targets.forEach((t, i) => {
    for (let k = have[i] ?? 0; k < (want[i] ?? 0); k += 1) queue.push(t);
  });
  const expiresAt = new Date(Date.now() + SEED_TTL_SECONDS * 1000);
  let done = 0;
  await closedLoop(queue.length, CREATE_CONCURRENCY, async (i) => {
    await createLiveGrant(admin, queue[i]!, expiresAt);
    done += 1;
    if (done % 2000 === 0) log(`    made ${done}/${queue.length} live grants`);
  });
  return targets.map((_, i) => Math.max(have[i] ?? 0, want[i] ?? 0));
}

/** The selectors of what the scenario made: its live grants (`seeds`) or its exchanges' grants. */
function selectors(seeds: boolean): { objects: string; records: string } {
  const seed = seeds ? `${SEED_LABEL}=true` : `!${SEED_LABEL}`;
  return {
    // Never an inline role's shared Role: it belongs to no grant.
    objects: `${MANAGED_SELECTOR},${PART_LABEL}!=${INLINE_ROLE_PART},${seed}`,
    records: `${LEDGER_SELECTOR},${seed}`,
  };
}

/** The collections holding grant objects in these namespaces and the records in the ledger's. */
function collections(namespaces: string[], ledgerNamespace: string, seeds: boolean): string[] {
  const sel = selectors(seeds);
  const objects = namespaces.flatMap((ns) => Object.values(paths(ns)));
  return [
    ...objects.map((path) => `${path}?labelSelector=${enc(sel.objects)}`),
    `${leases(ledgerNamespace)}?labelSelector=${enc(sel.records)}`,
  ];
}

/** How many such objects are left (0 when none), one listing per collection. */
export async function countGrantObjects(
  admin: MinimalKubeClient,
  namespaces: string[],
  ledgerNamespace: string,
  seeds: boolean,
): Promise<number> {
  const counts = await Promise.all(
    collections(namespaces, ledgerNamespace, seeds).map(
      async (path) => (await admin.json<{ items: unknown[] }>('GET', path)).items.length,
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * Deletes the scenario's live grants (`seeds`) or its exchanges' grants from these namespaces, one
 * collection deletion per kind and namespace, all at once, until a listing finds none. A deletion
 * of 10,000 objects can outlast the API server's request timeout (it goes on regardless), so a
 * failed call is only retried; the listing decides. Returns how many are left (0 unless stuck).
 */
export async function removeGrantObjects(
  admin: MinimalKubeClient,
  namespaces: string[],
  ledgerNamespace: string,
  seeds: boolean,
): Promise<number> {
  let left = Infinity;
  for (let attempt = 0; attempt < REMOVE_ATTEMPTS && left > 0; attempt += 1) {
    await Promise.all(
      collections(namespaces, ledgerNamespace, seeds).map((path) =>
        admin.raw('DELETE', path).catch((err: unknown) => err),
      ),
    );
    left = await countGrantObjects(admin, namespaces, ledgerNamespace, seeds);
  }
  return left;
}
