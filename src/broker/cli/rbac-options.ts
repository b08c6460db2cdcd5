// The options that say whose RBAC `rbac generate` and `rbac check` are about.
import { DNS_LABEL } from '../../shared/contract.js';
import { DEFAULT_BROKER_IDENTITY, type BrokerIdentity } from '../rbac/broker-rbac.js';
import { UsageError, type ParsedArgs } from './command.js';

export const IDENTITY_OPTIONS = {
  'broker-namespace': { type: 'string' },
  'service-account': { type: 'string' },
  name: { type: 'string' },
} as const;

export const IDENTITY_HELP = `  --broker-namespace N  the broker's namespace (default ${DEFAULT_BROKER_IDENTITY.brokerNamespace})
  --service-account S   the broker's ServiceAccount (default ${DEFAULT_BROKER_IDENTITY.serviceAccount})
  --name P              the Roles' and RoleBindings' name; the ClusterRole is P-role-reader
                        (default ${DEFAULT_BROKER_IDENTITY.name})`;

export function identityOf(args: ParsedArgs): BrokerIdentity {
  const pick = (option: keyof typeof IDENTITY_OPTIONS, fallback: string): string => {
    const value = (args.values[option] as string | undefined) ?? fallback;
    if (!DNS_LABEL.test(value))
      throw new UsageError(`--${option}: ${JSON.stringify(value)} is not a DNS-1123 label`);
    return value;
  };
  return {
    brokerNamespace: pick('broker-namespace', DEFAULT_BROKER_IDENTITY.brokerNamespace),
    serviceAccount: pick('service-account', DEFAULT_BROKER_IDENTITY.serviceAccount),
    name: pick('name', DEFAULT_BROKER_IDENTITY.name),
  };
}
