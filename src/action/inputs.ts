// The action's inputs and runner environment, read once and checked at the edge into a frozen,
// typed object. Every error names the input and says how to fix it, so a misconfigured workflow
// fails in the first second instead of after retries.
import { isAbsolute, relative, resolve } from 'node:path';
import { DEFAULT_AUDIENCE } from '../shared/api.js';
import {
  DNS_LABEL_RULE,
  MAX_TTL_SECONDS,
  MIN_TTL_SECONDS,
  ROLE_NAME,
  isDnsLabel,
} from '../shared/contract.js';

export interface ActionInputs {
  brokerUrl: URL;
  audience: string;
  namespace: string;
  role: string;
  ttlSeconds: number | undefined;
  contextName: string;
  /** A user-chosen kubeconfig file; undefined means a fresh private directory under RUNNER_TEMP. */
  kubeconfigPath: string | undefined;
  exportKubeconfig: boolean;
  /** Export KUBE_CONFIG_PATH (Terraform's and Helm's providers) too. */
  exportKubeConfigPath: boolean;
  jobSummary: boolean;
  brokerCa: string | undefined;
  revoke: boolean;
  /** static: the token in the kubeconfig; exec: a credential plugin that renews it (credential-run.ts). */
  credentials: CredentialMode;
  runnerTemp: string;
  workspace: string | undefined;
}

/**
 * Distinct per namespace and role, so several calls in one job merge into one KUBECONFIG list
 * without colliding. Unambiguous: a namespace or role name never contains "@".
 */
export const defaultContextName = (namespace: string, role: string): string => `${role}@${namespace}`;

export const CREDENTIAL_MODES = ['static', 'exec'] as const;
export type CredentialMode = (typeof CREDENTIAL_MODES)[number];

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Reads one input the way @actions/core does: trimmed, '' when absent. */
export type GetInput = (name: string) => string;
export type Env = Readonly<Record<string, string | undefined>>;

function parseBoolean(name: string, raw: string, fallback: boolean): boolean {
  if (raw === '') return fallback;
  // The YAML 1.2 core-schema spellings, as core.getBooleanInput accepts.
  if (['true', 'True', 'TRUE'].includes(raw)) return true;
  if (['false', 'False', 'FALSE'].includes(raw)) return false;
  throw new InputError(`Input "${name}" must be true or false, got "${raw}".`);
}

function parseBrokerUrl(raw: string): URL {
  if (raw === '')
    throw new InputError('Input "broker-url" is required: set it to the broker\'s https:// URL.');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InputError(`Input "broker-url" is not a URL: "${raw}". Use e.g. https://broker.example.com.`);
  }
  if (url.username || url.password)
    throw new InputError(
      'Input "broker-url" must not contain credentials; the action authenticates with OIDC.',
    );
  if (url.search || url.hash) throw new InputError('Input "broker-url" must not have a query or fragment.');
  // Plain http would send the GitHub JWT and receive the Kubernetes token in clear text. Loopback is
  // the one exception: a broker on the same host (local runs, tests, a sidecar).
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback))
    throw new InputError(
      `Input "broker-url" must use https:// (got ${url.protocol}//${url.host}); plain http is only accepted for a broker on localhost.`,
    );
  return url;
}

function parseCredentials(raw: string): CredentialMode {
  if (raw === '') return 'static';
  if (!(CREDENTIAL_MODES as readonly string[]).includes(raw))
    throw new InputError(`Input "credentials" must be static or exec, got "${raw}".`);
  return raw as CredentialMode;
}

function parseTtl(raw: string): number | undefined {
  if (raw === '') return undefined;
  if (!/^\d+$/.test(raw))
    throw new InputError(`Input "ttl" must be a whole number of seconds, got "${raw}". Example: ttl: 900`);
  const n = Number(raw);
  if (n < MIN_TTL_SECONDS || n > MAX_TTL_SECONDS)
    throw new InputError(
      `Input "ttl" must be between ${MIN_TTL_SECONDS} and ${MAX_TTL_SECONDS} seconds, got ${n}. The broker refuses (403) more than the policy rule's maximum.`,
    );
  return n;
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(resolve(parent), resolve(child));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function parseKubeconfigPath(raw: string, workspace: string | undefined): string | undefined {
  if (raw === '') return undefined;
  if (!isAbsolute(raw))
    throw new InputError(
      `Input "kubeconfig-path" must be an absolute path, got "${raw}". Leave it empty to use a private directory under RUNNER_TEMP.`,
    );
  // The workspace is what gets committed, uploaded as artifacts and copied into images: a
  // credential there leaks (google-github-actions/auth#298). Refuse rather than warn.
  if (workspace && isInside(raw, workspace))
    throw new InputError(
      `Input "kubeconfig-path" must be outside GITHUB_WORKSPACE (${workspace}), where files get committed or uploaded. ` +
        'Use a path under ${{ runner.temp }}, or leave it empty.',
    );
  return resolve(raw);
}

export function parseInputs(getInput: GetInput, env: Env): Readonly<ActionInputs> {
  const runnerTemp = env.RUNNER_TEMP;
  if (!runnerTemp || !isAbsolute(runnerTemp))
    throw new InputError(
      'RUNNER_TEMP is not set to an absolute path: run this action on a GitHub Actions runner.',
    );
  const workspace = env.GITHUB_WORKSPACE || undefined;

  const namespace = getInput('namespace');
  if (namespace === '')
    throw new InputError('Input "namespace" is required: set it to the Kubernetes namespace the job needs.');
  if (!isDnsLabel(namespace))
    throw new InputError(
      `Input "namespace" must be a Kubernetes namespace name (${DNS_LABEL_RULE}), got "${namespace}".`,
    );

  const role = getInput('role');
  if (role === '')
    throw new InputError(
      'Input "role" is required: set it to a role name the broker policy offers for this namespace.',
    );
  if (!ROLE_NAME.test(role))
    throw new InputError(
      `Input "role" must be a role name from the broker policy (letters, digits, ".", "_", ":", "-"), got "${role}".`,
    );

  const contextName = getInput('context-name') || defaultContextName(namespace, role);
  if (contextName.length > 253 || !/^[A-Za-z0-9][A-Za-z0-9._@:-]*$/.test(contextName))
    throw new InputError(
      `Input "context-name" may only contain letters, digits, ".", "_", "@", ":" and "-", got "${contextName}".`,
    );

  const audience = getInput('audience') || DEFAULT_AUDIENCE;
  if (/[\s]/.test(audience))
    throw new InputError(`Input "audience" must not contain whitespace, got "${audience}".`);

  const brokerCa = getInput('broker-ca') || undefined;
  if (brokerCa !== undefined && !brokerCa.includes('-----BEGIN CERTIFICATE-----'))
    throw new InputError(
      'Input "broker-ca" must be PEM (-----BEGIN CERTIFICATE-----...). Pass the certificate text, not a file path.',
    );

  return Object.freeze({
    brokerUrl: parseBrokerUrl(getInput('broker-url')),
    audience,
    namespace,
    role,
    ttlSeconds: parseTtl(getInput('ttl')),
    contextName,
    kubeconfigPath: parseKubeconfigPath(getInput('kubeconfig-path'), workspace),
    exportKubeconfig: parseBoolean('export-kubeconfig', getInput('export-kubeconfig'), true),
    exportKubeConfigPath: parseBoolean('export-kube-config-path', getInput('export-kube-config-path'), true),
    jobSummary: parseBoolean('job-summary', getInput('job-summary'), true),
    brokerCa,
    revoke: parseBoolean('revoke', getInput('revoke'), true),
    credentials: parseCredentials(getInput('credentials')),
    runnerTemp: resolve(runnerTemp),
    workspace,
  });
}
