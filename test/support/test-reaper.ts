// A Reaper over a scripted fake cluster, as the reaper's unit tests build it: one job namespace
// ("ci"), a lease named in the broker namespace, a silent logger, audit lines dropped. Each test
// passes what it looks at (its clock, its audit sink, its concurrency).
import type { K8sClients } from '../../src/broker/kube/clients.js';
import { Reaper, type ReaperOptions } from '../../src/broker/grants/reaper.js';
import { silentLogger } from './logger.js';

export function testReaper(k8s: K8sClients, options: Partial<ReaperOptions> = {}): Reaper {
  return new Reaper(k8s, {
    namespaces: () => ['ci'],
    intervalSeconds: 1,
    lease: { namespace: 'broker', name: 'reaper', identity: 'me' },
    logger: silentLogger,
    audit: { record: () => undefined },
    ...options,
  });
}
