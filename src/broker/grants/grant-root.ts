// The grant's root (its ServiceAccount, named after the grant id) and the JWT's spending (its JWT-use
// record, named the same), written at the same time: one round trip on the answer's path instead of
// two (docs/benchmarks.md, finding 30). Only the replica whose record the API server stored goes on,
// and it gives a root a binding or a token only after both writes succeeded. What each outcome does:
//
//   record stored, root created  → go on.
//   record refused (the JWT was spent: jwt_replayed) or failed
//                                → delete the root if it was created here (by uid); the record's error.
//   record stored, root exists   → the grant id hashes the JWT's jti, which nobody knows before the JWT
//                                  is presented, so that root was made for this very JWT: by a replica
//                                  that lost the record (and is deleting it), by a broker killed before
//                                  its record landed, or it is a grant whose record is gone. With its
//                                  access RoleBinding (owned by it) it is a grant: jwt_replayed, and the
//                                  record, kept, now proves it to the reaper. Without, it never had a
//                                  permission: delete it (by the uid read) and create this grant's own.
//   record stored, root failed   → the root's error (creation.ts gives the JWT back).
//
// A broker killed between the two writes can leave a root without a record. That one has no permission
// and no token; the reaper deletes any root without a record once no exchange can still be writing
// one (grant-proof.ts).
import { BrokerError } from '../../shared/errors.js';
import type { K8sClients } from '../kube/clients.js';
import {
  deleteIgnoringNotFound,
  isAlreadyExists,
  isConflict,
  isNotFound,
  readIgnoringNotFound,
} from '../kube/errors.js';
import { clusterError } from './cluster-error.js';
import type { GrantObjects } from './grant-objects.js';
import { deleteRoot, ownedBy } from './revoke.js';

/**
 * How often a root found in the way is deleted and created again before the exchange gives up: each
 * one in the way was made by a replica that lost the record to this one, so only as many replicas as
 * received the same JWT at once can put one there.
 */
export const ROOT_ATTEMPTS = 3;

/** Creates the root beside `spendJwt()` and returns the root's uid once both are written. */
export async function createRootSpendingJwt(
  k8s: K8sClients,
  namespace: string,
  objects: GrantObjects,
  spendJwt: () => Promise<void>,
  /** Called when a root this replica created could not be deleted (the reaper removes it later). */
  onRollbackError?: (what: string, err: unknown) => void,
): Promise<string> {
  const [spent, root] = await Promise.allSettled([spendJwt(), createRoot(k8s, namespace, objects)]);
  if (spent.status === 'rejected') {
    if (root.status === 'fulfilled')
      await deleteOwnRoot(k8s, namespace, objects.grantId, root.value, onRollbackError);
    throw spent.reason;
  }
  if (root.status === 'fulfilled') return root.value;
  if (!isAlreadyExists(root.reason)) throw clusterError('create serviceaccount', root.reason);
  return replaceUnboundRoot(k8s, namespace, objects);
}

async function createRoot(k8s: K8sClients, namespace: string, objects: GrantObjects): Promise<string> {
  const sa = await k8s.hotPath.createNamespacedServiceAccount({ namespace, body: objects.serviceAccount });
  const uid = sa.metadata?.uid ?? '';
  if (!uid) throw new Error('the API server returned a ServiceAccount without uid');
  return uid;
}

/**
 * The record is this replica's and a root of the same name is in the way (see the head of the
 * file): a grant if it has its access RoleBinding, else a root that never got a permission, deleted
 * by its uid (a root put there after the read is read again on the next attempt).
 */
async function replaceUnboundRoot(
  k8s: K8sClients,
  namespace: string,
  objects: GrantObjects,
): Promise<string> {
  const { grantId } = objects;
  const named = { name: grantId, namespace };
  for (let attempt = 1; ; attempt++) {
    try {
      const [root, binding] = await Promise.all([
        readIgnoringNotFound(() => k8s.hotPath.readNamespacedServiceAccount(named)),
        readIgnoringNotFound(() => k8s.hotPath.readNamespacedRoleBinding(named)),
      ]);
      const uid = root?.metadata?.uid;
      // Only the root's own binding makes it a grant; one someone else put under the name does not.
      if (uid && binding?.metadata && ownedBy(binding.metadata, uid))
        throw new BrokerError('ERR_UNAUTHENTICATED', 'jwt_replayed', `grant ${grantId} already exists`);
      if (uid) await deleteIgnoringNotFound(() => deleteRoot(k8s, namespace, grantId, uid));
      return await createRoot(k8s, namespace, objects);
    } catch (err) {
      if (err instanceof BrokerError) throw err;
      if (!isAlreadyExists(err) || attempt >= ROOT_ATTEMPTS) throw clusterError('create serviceaccount', err);
    }
  }
}

/** Deletes the root this replica created, unless it is already gone or replaced (its uid differs). */
async function deleteOwnRoot(
  k8s: K8sClients,
  namespace: string,
  grantId: string,
  uid: string,
  onRollbackError?: (what: string, err: unknown) => void,
): Promise<void> {
  await deleteRoot(k8s, namespace, grantId, uid).catch((err: unknown) => {
    if (!isNotFound(err) && !isConflict(err)) onRollbackError?.(`ServiceAccount ${grantId}`, err);
  });
}
