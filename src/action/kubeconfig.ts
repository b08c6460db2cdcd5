// Builds the kubeconfig for a grant, and reads the grant's credential back out of it in the post
// step. The file (or, with credentials: exec, the plugin's cache beside it) is the only place the
// token lives after main ends (it is never in step state), so post reads it from there to revoke
// the grant with the grant's own identity.
import { dump, load } from 'js-yaml';
import type { ExchangeResponse } from '../shared/api.js';

export interface GrantCredential {
  server: string;
  certificateAuthorityData: string;
  token: string;
  namespace: string;
}

/** The exec credential plugin the kubeconfig runs instead of holding a token (credentials: exec). */
export interface ExecPlugin {
  command: string;
  args: string[];
}

export function renderKubeconfig(grant: ExchangeResponse, contextName: string, plugin?: ExecPlugin): string {
  const user = plugin
    ? {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: plugin.command,
          args: plugin.args,
          // Never prompts: a CI step has nobody to answer.
          interactiveMode: 'Never',
          provideClusterInfo: false,
        },
      }
    : { token: grant.token };
  return dump(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: contextName,
          // No CA (a gateway with a publicly trusted certificate): kubectl then uses the system roots.
          cluster: grant.certificateAuthorityData
            ? { server: grant.server, 'certificate-authority-data': grant.certificateAuthorityData }
            : { server: grant.server },
        },
      ],
      users: [{ name: contextName, user }],
      contexts: [
        {
          name: contextName,
          context: { cluster: contextName, user: contextName, namespace: grant.namespace },
        },
      ],
      'current-context': contextName,
      preferences: {},
    },
    { lineWidth: -1, noRefs: true },
  );
}

interface Named<T> {
  name?: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

/**
 * The current context's server, CA, token and namespace; undefined when the file is not ours.
 * `pluginToken`: the token, when the kubeconfig runs the credential plugin instead of holding one.
 */
export function readGrantCredential(text: string, pluginToken?: string): GrantCredential | undefined {
  let doc: unknown;
  try {
    doc = load(text);
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const cfg = doc as {
    'current-context'?: unknown;
    contexts?: Named<{ cluster?: unknown; user?: unknown; namespace?: unknown }>[];
    clusters?: Named<{ server?: unknown; 'certificate-authority-data'?: unknown }>[];
    users?: Named<{ token?: unknown }>[];
  };
  const find = <T>(list: Named<T>[] | undefined, name: unknown) =>
    Array.isArray(list) ? list.find((e) => e && e.name === name) : undefined;
  const context = find(cfg.contexts, cfg['current-context'])?.context;
  const cluster = find(cfg.clusters, context?.cluster)?.cluster;
  const user = find(cfg.users, context?.user)?.user;
  const server = cluster?.server;
  const ca = cluster?.['certificate-authority-data'] ?? '';
  const token = user?.token ?? pluginToken;
  const namespace = context?.namespace;
  if (typeof server !== 'string' || typeof ca !== 'string' || typeof token !== 'string') return undefined;
  return {
    server,
    certificateAuthorityData: ca,
    token,
    namespace: typeof namespace === 'string' ? namespace : '',
  };
}
