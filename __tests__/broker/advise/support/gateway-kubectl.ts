// The real kubectl against an in-process broker's gateway, as a job in gateway mode runs it: a
// kubeconfig naming the gateway and the grant's token, and kubectl spawned without blocking this
// process (where the gateway it talks to runs).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ExchangeResponse } from '../../../../src/shared/api.js';
import { waitFor, writeTokenKubeconfig } from '../../../../test/support/cluster.js';
import type { InProcessBroker } from '../../../../test/support/in-process-broker.js';

export interface KubectlRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, '--request-timeout=10s', ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Writes the grant's gateway kubeconfig into `dir` and waits until the gateway accepts the grant. */
export async function gatewayKubeconfig(
  broker: InProcessBroker,
  grant: ExchangeResponse,
  dir: string,
): Promise<string> {
  const path = join(dir, `kubeconfig-${grant.grantId}`);
  writeTokenKubeconfig(path, {
    server: broker.gateway!.url,
    caData: broker.ca!.toString('base64'),
    token: grant.token,
    namespace: grant.namespace,
  });
  await waitFor('the gateway to accept the grant', async () =>
    (await kubectl(path, ['get', 'configmaps', '-o', 'name'])).status === 0 ? true : undefined,
  );
  return path;
}
