// What the broker has in the cluster, listed as admin: grant objects and JWT-use records.
import { load } from 'js-yaml';
import { kubectlAdmin } from './cluster.js';

/** Every object carrying the broker's managed-by label in these namespaces, as kind/name strings. */
export function managedObjects(namespaces: string[]): string[] {
  const out: string[] = [];
  for (const ns of namespaces) {
    const text = kubectlAdmin([
      '-n',
      ns,
      'get',
      'serviceaccounts,roles,rolebindings',
      '-l',
      'app.kubernetes.io/managed-by=k8s-ephemeral-access',
      '-o',
      'json',
    ]);
    const list = load(text) as {
      items: { kind: string; metadata: { name: string; deletionTimestamp?: string } }[];
    };
    for (const i of list.items)
      if (!i.metadata.deletionTimestamp) out.push(`${ns}/${i.kind}/${i.metadata.name}`);
  }
  return out.sort();
}

/** The broker's JWT-use records (Leases in its namespace, src/broker/grants/replay-ledger.ts). */
export function jwtUseRecords(brokerNamespace: string): { name: string; expiresAt: number }[] {
  const list = load(
    kubectlAdmin([
      '-n',
      brokerNamespace,
      'get',
      'leases',
      '-l',
      'k8s-ephemeral-access.io/jwt-ledger=true',
      '-o',
      'json',
    ]),
  ) as { items: { metadata: { name: string; annotations?: Record<string, string> } }[] };
  return list.items.map((i) => ({
    name: i.metadata.name,
    expiresAt: Date.parse(i.metadata.annotations?.['k8s-ephemeral-access.io/expires-at'] ?? ''),
  }));
}
