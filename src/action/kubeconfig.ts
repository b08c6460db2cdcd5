// Builds the kubeconfig for a grant (kubeconfig-credential.ts reads it back in the post step).
// Written as JSON, which every kubeconfig reader parses (YAML is a superset of JSON): the main
// step then needs no YAML library (32 KB, two fifths of its bundle).
import type { ExchangeResponse } from '../shared/api.js';

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
  return `${JSON.stringify(
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
    null,
    2,
  )}\n`;
}
