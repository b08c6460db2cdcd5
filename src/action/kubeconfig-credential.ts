// Reads the grant's credential back out of its kubeconfig in the post step. The file (or, with
// credentials: exec, the plugin's cache beside it) is the only place the token lives after main
// ends (it is never in step state), so post reads it from there to revoke the grant with the
// grant's own identity. YAML, so that a kubeconfig an earlier version wrote is read too.
import { load } from 'js-yaml';

export interface GrantCredential {
  server: string;
  certificateAuthorityData: string;
  token: string;
  namespace: string;
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
