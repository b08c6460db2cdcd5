// kubectl runs, the existing-cluster check and the API server's audit log, as the demo needs them.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import type { ChildResult } from '../../test/support/runner.js';

/** The HTTP status kubectl saw, read from its error text. */
export function kubectlHttpStatus(r: ChildResult): number | undefined {
  if (r.code === 0) return 200;
  if (/\(Forbidden\)|forbidden/.test(r.stderr)) return 403;
  if (/\(Unauthorized\)|must be logged in/.test(r.stderr)) return 401;
  return undefined;
}

export function apiServerReady(kubeconfig: string): boolean {
  if (!existsSync(kubeconfig)) return false;
  const r = spawnSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    { encoding: 'utf8' },
  );
  return r.status === 0 && r.stdout.trim() === 'ok';
}

export interface KubeconfigDoc {
  clusters?: { name?: string; cluster?: { server?: string; 'certificate-authority-data'?: string } }[];
  users?: { user?: { token?: string } }[];
}

/** The broker and the job kubeconfigs are built from the first cluster entry's server and CA. */
export function checkExistingKubeconfig(path: string): string {
  if (!existsSync(path)) throw new Error(`--kubeconfig ${path}: no such file`);
  const doc = load(readFileSync(path, 'utf8')) as KubeconfigDoc | undefined;
  const cluster = doc?.clusters?.[0]?.cluster;
  if (!cluster?.server || !cluster['certificate-authority-data'])
    throw new Error(
      `--kubeconfig ${path}: its first cluster entry needs "server" and "certificate-authority-data". ` +
        'Make a self-contained copy with: kubectl config view --raw --minify --flatten > admin.kubeconfig',
    );
  return cluster.server;
}

export interface ApiAuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  stageTimestamp?: string;
  user?: { username?: string; extra?: Record<string, string[]> };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

export const CREDENTIAL_ID_KEY = 'authentication.kubernetes.io/credential-id';

/** The API server's completed requests made with this credential (filtered before parsing). */
export function apiAuditEventsFor(auditLog: string, credentialId: string): ApiAuditEvent[] {
  const out: ApiAuditEvent[] = [];
  for (const line of readFileSync(auditLog, 'utf8').split('\n')) {
    if (!line.includes(credentialId)) continue;
    const e = JSON.parse(line) as ApiAuditEvent;
    if (e.stage === 'ResponseComplete' && e.user?.extra?.[CREDENTIAL_ID_KEY]?.includes(credentialId))
      out.push(e);
  }
  return out;
}
