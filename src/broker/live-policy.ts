// The policy the broker runs, replaceable while it runs. A policy takes over only once it is
// completely vetted: its named roles read and found safe, with their watches running. The swap
// is one assignment, so every request is decided by one whole policy, the old or the new, never
// a mix; the old policy's role watches stop after it. Parts that keep state per namespace (the
// gateway's grant watches) follow the swap: made ready for the new policy before it, and let go of
// what only the old one needed after it.
import type { K8sClients } from './kube/clients.js';
import { startRoleVetting, withVettedRoles, type RoleVetting } from './grants/role-vetting.js';
import type { Logger } from './logger.js';
import type { BrokerMetrics } from './metrics.js';
import type { PolicyEngine } from './types.js';

/** A part whose state follows the running policy (e.g. which namespaces it watches). */
export interface PolicyFollower {
  /** Before `next` takes over; a throw refuses `next` and the running policy stays. */
  prepare(next: PolicyEngine): Promise<void>;
  /** After `running` took over: drop what only the previous policy needed. */
  settle(running: PolicyEngine): void;
}

export interface LivePolicy {
  /** Decides with whichever policy runs at the moment of the call. */
  readonly engine: PolicyEngine;
  /** The running policy's file digest, when known. */
  sha256(): string | undefined;
  /**
   * Vets `next` and then makes it the running policy. Throws (and changes nothing) when a named
   * role is missing, dangerous or unreadable.
   */
  replace(next: PolicyEngine, sha256?: string): Promise<void>;
  /** From now on, every replacement waits for `follower.prepare` and then calls its settle. */
  addFollower(follower: PolicyFollower): void;
  stop(): void;
}

interface Running {
  engine: PolicyEngine;
  vetting: RoleVetting;
  sha256: string | undefined;
}

export async function startLivePolicy(
  initial: PolicyEngine,
  deps: {
    k8s: Pick<K8sClients, 'rbac' | 'watcher'>;
    logger: Logger;
    metrics: Pick<BrokerMetrics, 'policyLoadedTimestamp' | 'policyInfo'>;
    now?: () => number;
  },
  sha256?: string,
): Promise<LivePolicy> {
  const vet = async (policy: PolicyEngine, digest: string | undefined): Promise<Running> => {
    const vetting = await startRoleVetting(
      deps.k8s,
      policy.namedRoles(),
      deps.logger.child({ component: 'role-vetting' }),
    );
    return { engine: withVettedRoles(policy, vetting), vetting, sha256: digest };
  };
  const publish = (r: Running) => {
    deps.metrics.policyLoadedTimestamp.set((deps.now ?? Date.now)() / 1000);
    deps.metrics.policyInfo.reset();
    if (r.sha256) deps.metrics.policyInfo.set({ sha256: r.sha256 }, 1);
  };
  // Before listening: a policy that binds a missing or dangerous role must not serve at all.
  let running = await vet(initial, sha256);
  publish(running);
  let stopped = false;
  const followers: PolicyFollower[] = [];
  return {
    engine: {
      authorize: (claims, request, clientAddress) => running.engine.authorize(claims, request, clientAddress),
      namespaces: () => running.engine.namespaces(),
      namedRoles: () => running.engine.namedRoles(),
      sourceAllowed: (ruleName, address) => running.engine.sourceAllowed(ruleName, address),
      inlineRoles: () => running.engine.inlineRoles?.() ?? [],
      shadowRole: (ruleName) => running.engine.shadowRole?.(ruleName),
      roleDefinition: (role) => running.engine.roleDefinition?.(role),
    },
    sha256: () => running.sha256,
    async replace(next, digest) {
      const candidate = await vet(next, digest);
      try {
        for (const follower of followers) await follower.prepare(candidate.engine);
      } catch (err) {
        candidate.vetting.stop();
        throw err;
      }
      if (stopped) {
        candidate.vetting.stop();
        return;
      }
      const previous = running;
      running = candidate;
      publish(running);
      previous.vetting.stop();
      for (const follower of followers) follower.settle(running.engine);
    },
    addFollower(follower) {
      followers.push(follower);
    },
    stop() {
      stopped = true;
      running.vetting.stop();
    },
  };
}
