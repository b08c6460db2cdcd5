// Leader election on a coordination.k8s.io/v1 Lease, so only one broker replica reaps at a time.
// Every write carries the resourceVersion it read: two replicas racing for the lease cannot both win.
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import type { K8sClients } from '../kube/clients.js';
import { isConflict, isNotFound } from '../kube/errors.js';

export interface LeaderLeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  now?: () => number;
}

export class LeaderLease {
  private readonly now: () => number;

  constructor(
    private readonly k8s: K8sClients,
    private readonly options: LeaderLeaseOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Acquires the lease if free or expired, renews it if ours. True when this replica holds it now. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds } = this.options;
    const nowTime = new V1MicroTime(this.now());
    let current: V1Lease;
    try {
      current = await this.k8s.coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.k8s.coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: nowTime,
              renewTime: nowTime,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false; // another replica created it first
        throw createErr;
      }
    }
    const spec = current.spec ?? {};
    const ours = spec.holderIdentity === identity;
    const renewedAt = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewedAt + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000 < this.now();
    if (!ours && spec.holderIdentity && !expired) return false;
    try {
      await this.k8s.coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: {
            ...current.metadata,
            name,
            namespace,
            resourceVersion: current.metadata?.resourceVersion,
          },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime:
              ours && spec.acquireTime ? new V1MicroTime(new Date(spec.acquireTime).getTime()) : nowTime,
            renewTime: nowTime,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
          },
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote it since we read it
      throw err;
    }
  }

  /** Gives the lease up on shutdown so another replica takes over without waiting for expiry. */
  async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const current = await this.k8s.coordination.readNamespacedLease({ name, namespace });
      if (current.spec?.holderIdentity !== identity) return;
      await this.k8s.coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: { ...current.metadata, resourceVersion: current.metadata?.resourceVersion },
          spec: { ...current.spec, holderIdentity: undefined, renewTime: undefined, acquireTime: undefined },
        },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}
