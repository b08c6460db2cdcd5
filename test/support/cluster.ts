// Test helpers for the real control plane: an admin client, fresh namespaces, kubectl runs with
// any identity (admin included), and the apiserver's audit log.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { dump, load } from 'js-yaml';

function required(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(
      `${name} is not set: run the tests through jest, in its cluster project (jest.config.js lists its files)`,
    );
  return v;
}

/** A cluster named by a caller that jest does not run (the demo); it comes before the environment. */
export interface ClusterTarget {
  adminKubeconfig: string;
  auditLog?: string;
}
let target: ClusterTarget | undefined;

/** Points the harness at this cluster instead of the one jest's global setup put in the environment. */
export function useCluster(cluster: ClusterTarget): void {
  target = cluster;
}

export const adminKubeconfigPath = (): string =>
  target?.adminKubeconfig ?? required('K8S_EA_ADMIN_KUBECONFIG');
export const auditLogPath = (): string =>
  target ? (target.auditLog ?? missingAuditLog()) : required('K8S_EA_AUDIT_LOG');
const missingAuditLog = (): never => {
  throw new Error("this cluster's audit log is not readable from here");
};

export function adminConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(adminKubeconfigPath());
  return kc;
}

export function clusterEndpoint(): { server: string; caData: string } {
  const doc = load(readFileSync(adminKubeconfigPath(), 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  };
  const c = doc.clusters[0]!.cluster;
  return { server: c.server, caData: c['certificate-authority-data'] };
}

export const uniqueName = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Creates a namespace for one test file; the returned function deletes it. */
export async function freshNamespace(
  prefix = 'test',
): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = adminConfig().makeApiClient(CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({
    body: { metadata: { name, labels: { 'k8s-ephemeral-access.test/owner': 'jest' } } },
  });
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

export const coreApi = (): CoreV1Api => adminConfig().makeApiClient(CoreV1Api);
export const rbacApi = (): RbacAuthorizationV1Api => adminConfig().makeApiClient(RbacAuthorizationV1Api);

/** Writes to `path` (mode 0600) a kubeconfig of one server, its CA (base64) and a bearer token. */
export function writeTokenKubeconfig(
  path: string,
  c: { server: string; caData: string; token: string; namespace: string },
): void {
  writeFileSync(
    path,
    dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: c.server, 'certificate-authority-data': c.caData } }],
      users: [{ name: 'u', user: { token: c.token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u', namespace: c.namespace } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
}

/** Writes a kubeconfig that authenticates with a bearer token; the caller removes the directory. */
export function tokenKubeconfig(token: string, namespace = 'default'): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-test-'));
  const path = join(dir, 'kubeconfig');
  writeTokenKubeconfig(path, { ...clusterEndpoint(), token, namespace });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** kubectl as admin; a failure is returned, not thrown (for best-effort cleanup). */
export function tryKubectlAdmin(args: string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync('kubectl', ['--kubeconfig', adminKubeconfigPath(), '--request-timeout=30s', ...args], {
    encoding: 'utf8',
    input,
    // Listings of thousands of objects (load tests) exceed the default 1 MiB.
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** kubectl as admin; throws with kubectl's stderr when it fails. */
export function kubectlAdmin(args: string[], input?: string): string {
  const r = tryKubectlAdmin(args, input);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Creates or replaces a ClusterRole with these rules, labelled as the tests' own. */
export function applyClusterRole(name: string, rules: unknown[]): void {
  kubectlAdmin(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name, labels: { 'k8s-ephemeral-access.test/owner': 'jest' } },
      rules,
    }),
  );
}

export function kubectl(kubeconfig: string, args: string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync('kubectl', ['--kubeconfig', kubeconfig, '--request-timeout=10s', ...args], {
    encoding: 'utf8',
    input,
  });
}

/** kubectl's exit status plus the HTTP status it saw (from the error text), for allow/deny assertions. */
export function kubectlStatus(
  kubeconfig: string,
  args: string[],
): { ok: boolean; status?: number; stderr: string } {
  const r = kubectl(kubeconfig, args);
  if (r.status === 0) return { ok: true, stderr: r.stderr };
  let status: number | undefined;
  if (/\(Forbidden\)|forbidden/i.test(r.stderr)) status = 403;
  else if (/\(Unauthorized\)|must be logged in|Unauthorized/i.test(r.stderr)) status = 401;
  else if (/\(NotFound\)|not found/i.test(r.stderr)) status = 404;
  return { ok: false, status, stderr: r.stderr };
}

export interface AuditEvent {
  auditID: string;
  verb: string;
  requestURI: string;
  user: { username: string; uid?: string; extra?: Record<string, string[]> };
  responseStatus?: { code: number };
  objectRef?: { resource?: string; namespace?: string; name?: string };
  stage: string;
}

export function readAudit(): AuditEvent[] {
  return readFileSync(auditLogPath(), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditEvent);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until check() returns a value other than undefined, or throws after timeoutMs. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * After a credential was revoked at `since` (ms epoch): the first refusal kubectl sees (403 once
 * authorization is gone, 401 once the token is), when it came, and when 401 came.
 */
export async function waitForRevocation(
  kubeconfig: string,
  since: number,
): Promise<{ first: number | undefined; firstMs: number; unauthorizedMs: number }> {
  const first = await waitFor('a denial', () => {
    const s = kubectlStatus(kubeconfig, ['get', 'pods']);
    return s.ok ? undefined : s.status;
  });
  const firstMs = Date.now() - since;
  await waitFor(
    '401',
    () => (kubectlStatus(kubeconfig, ['get', 'pods']).status === 401 ? true : undefined),
    30_000,
    250,
  );
  return { first, firstMs, unauthorizedMs: Date.now() - since };
}
