// Reaper leader election on a real coordination.k8s.io/v1 Lease, under the deploy/ RBAC.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { LeaderLease } from '../../../src/broker/grants/lease.js';
import { loadKubeConfig, createK8sClients, type K8sClients } from '../../../src/broker/kube/clients.js';
import { installBrokerRbac, type BrokerRbac } from '../../../test/support/deploy-rbac.js';
import { freshNamespace, uniqueName } from '../../../test/support/cluster.js';

let ns: { name: string; remove: () => Promise<void> };
let rbac: BrokerRbac;
let k8s: K8sClients;

beforeAll(async () => {
  ns = await freshNamespace('lease-job');
  rbac = await installBrokerRbac([ns.name]);
  k8s = createK8sClients(loadKubeConfig(rbac.kubeconfigPath));
});
afterAll(async () => {
  await rbac?.cleanup();
  await ns?.remove();
});

const lease = (identity: string, name: string, now?: () => number) =>
  new LeaderLease(k8s, { namespace: rbac.brokerNamespace, name, identity, leaseDurationSeconds: 15, now });

test('one holder at a time: renew, refuse others, release hands over', async () => {
  const name = uniqueName('lease');
  const a = lease('replica-a', name);
  const b = lease('replica-b', name);
  expect(await a.tryAcquireOrRenew()).toBe(true);
  expect(await b.tryAcquireOrRenew()).toBe(false);
  expect(await a.tryAcquireOrRenew()).toBe(true);
  const held = await k8s.coordination.readNamespacedLease({ name, namespace: rbac.brokerNamespace });
  expect(held.spec).toMatchObject({ holderIdentity: 'replica-a', leaseDurationSeconds: 15 });
  await a.release();
  expect(await b.tryAcquireOrRenew()).toBe(true);
  expect(await a.tryAcquireOrRenew()).toBe(false);
});

test('an expired lease is taken over, counted as a transition', async () => {
  const name = uniqueName('lease');
  expect(await lease('dead-replica', name).tryAcquireOrRenew()).toBe(true);
  const later = () => Date.now() + 60_000;
  expect(await lease('replica-b', name, later).tryAcquireOrRenew()).toBe(true);
  const l = await k8s.coordination.readNamespacedLease({ name, namespace: rbac.brokerNamespace });
  expect(l.spec).toMatchObject({ holderIdentity: 'replica-b', leaseTransitions: 1 });
});

test('racing replicas: exactly one wins each round (resourceVersion-checked writes)', async () => {
  for (let round = 0; round < 5; round++) {
    const name = uniqueName('lease');
    const results = await Promise.all(
      ['r1', 'r2', 'r3', 'r4'].map((id) => lease(id, name).tryAcquireOrRenew()),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  }
  // Contending over an expired lease: also exactly one.
  const name = uniqueName('lease');
  await lease('old', name).tryAcquireOrRenew();
  const later = () => Date.now() + 60_000;
  const results = await Promise.all(
    ['r1', 'r2', 'r3'].map((id) => lease(id, name, later).tryAcquireOrRenew()),
  );
  expect(results.filter(Boolean)).toHaveLength(1);
});
