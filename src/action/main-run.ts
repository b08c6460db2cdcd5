// The main step: GitHub OIDC token -> broker exchange -> private kubeconfig -> outputs and state.
// Everything it touches comes in through `deps`, so tests and @github/local-action can run it
// without GitHub, and nothing happens at import time (except @actions/github reading the event
// payload into its run context, which defaultMainDeps hands on).
import { context as githubContext } from '@actions/github';
import { realpath } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExchangeRequest, ExchangeResponse } from '../shared/api.js';
import { serviceAccountUser } from '../shared/contract.js';
import { appendSummary, runnerCore, systemClock, type ActionCore, type Clock } from './action-core.js';
import {
  BrokerRefusal,
  classifyBrokerError,
  createBrokerClient,
  type BrokerClient,
} from './broker-client.js';
import { createNodeTransport, type HttpTransport } from './http-transport.js';
import { createIdTokenSource } from './id-token.js';
import { parseInputs, type ActionInputs, type Env } from './inputs.js';
import { CREDENTIAL_CACHE_FILE, writeNewCredentialCache } from './credential-cache.js';
import { renderKubeconfig, type ExecPlugin } from './kubeconfig.js';
import { checkOidcAvailable, type RunContext } from './oidc-preflight.js';
import { describeRoute } from './proxy.js';
import { presentedClaims, refusalFix, renderClaims } from './refusal-help.js';
import { retry } from './retry.js';
import { createPrivateDir, realDirectoryOf, writeNewPrivateFile, UnsafePathError } from './safe-fs.js';
import { STATE } from './state.js';
import { renderSummary } from './summary.js';
import { errorMessage } from '../shared/errors.js';

export interface MainDeps {
  core: ActionCore;
  env: Env;
  /** Returns a GitHub OIDC JWT for the audience (default: the runner's token service, id-token.ts). */
  getIdToken: (audience: string) => Promise<string>;
  /** Builds the HTTP transport, trusting the extra CA when given. */
  createTransport: (ca: string | undefined) => HttpTransport;
  /** Appends Markdown to the job summary. */
  writeSummary: (markdown: string) => Promise<void>;
  /** The workflow run: event name and payload (@actions/github's context). */
  runContext: RunContext;
  clock: Clock;
  /** Default: process.platform. */
  platform?: NodeJS.Platform;
  /** credentials: exec: the runner's node and the plugin bundle, as the kubeconfig will run them. */
  credentialPlugin?: { node: string; script: string };
}

/** One overall budget for token + exchange, so a broken setup fails in bounded time. */
export const EXCHANGE_DEADLINE_MS = 90_000;
export const KUBECONFIG_DIR_PREFIX = 'k8s-ephemeral-access-';

export function defaultMainDeps(): MainDeps {
  return {
    core: runnerCore,
    env: process.env,
    getIdToken: createIdTokenSource(process.env, createNodeTransport({ proxyEnv: process.env })),
    createTransport: (ca) => createNodeTransport({ ca, proxyEnv: process.env }),
    writeSummary: appendSummary,
    runContext: githubContext,
    clock: systemClock,
    credentialPlugin: bundledCredentialPlugin(),
  };
}

/** The runner's node and, as this file runs as dist/main/index.js, its sibling bundle. */
function bundledCredentialPlugin(): { node: string; script: string } {
  return {
    node: process.execPath,
    script: fileURLToPath(new URL('../credential/index.js', import.meta.url)),
  };
}

/** Entry for the runner and @github/local-action: never throws, reports through setFailed. */
export async function run(deps: MainDeps = defaultMainDeps()): Promise<void> {
  try {
    await runMain(deps);
  } catch (err) {
    deps.core.setFailed(failureMessage(err));
  }
}

function failureMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof BrokerRefusal) || !err.fromBroker) return message;
  const fix = refusalFix(err);
  return fix ? `${message}. Fix: ${fix}.` : message;
}

/**
 * The credential's safety rests on POSIX modes (a 0700 directory, a 0600 file, O_NOFOLLOW), which
 * Windows does not enforce or report; rather than a kubeconfig other accounts might read, no grant.
 */
export function checkPlatform(platform: NodeJS.Platform): void {
  if (platform === 'win32')
    throw new Error(
      'Windows runners are not supported: the kubeconfig is protected by POSIX file modes, which Windows does not enforce. ' +
        'Run this job on a Linux or macOS runner (e.g. runs-on: ubuntu-latest).',
    );
}

export async function runMain(deps: MainDeps): Promise<void> {
  const { core: c, clock } = deps;
  checkPlatform(deps.platform ?? process.platform);
  const inputs = parseInputs((name) => c.getInput(name), deps.env);
  checkOidcAvailable(deps.env, deps.runContext);

  // Saved before anything is created, so post knows main ran and what it may do.
  c.saveState(STATE.revoke, String(inputs.revoke));
  c.saveState(STATE.brokerUrl, inputs.brokerUrl.href);
  if (inputs.brokerCa) c.saveState(STATE.brokerCa, inputs.brokerCa);

  const broker = createBrokerClient({
    baseUrl: inputs.brokerUrl,
    transport: deps.createTransport(inputs.brokerCa),
    now: () => clock.now(),
  });
  const grant = await exchange(deps, inputs, broker);
  // First thing after the answer: from here on the runner replaces the token with *** in logs.
  c.setSecret(grant.token);
  c.saveState(STATE.grantId, grant.grantId);
  c.saveState(STATE.namespace, grant.namespace);
  c.saveState(STATE.expiresAt, grant.expiresAt);
  c.saveState(STATE.mode, grant.mode ?? 'direct');
  c.info(
    `Granted ${grant.role} in namespace ${grant.namespace} as ServiceAccount ${grant.serviceAccount} ` +
      `(grant ${grant.grantId}) until ${grant.expiresAt}.`,
  );

  let kubeconfigPath: string;
  try {
    kubeconfigPath = await writeKubeconfig(deps, inputs, grant);
  } catch (err) {
    // The job cannot use a grant it has no file for: revoke it now, while the token is in memory.
    await broker.revoke(grant.grantId, grant.token).then(
      () => c.info(`Revoked grant ${grant.grantId} because its kubeconfig could not be written.`),
      (revokeErr: unknown) =>
        c.warning(
          `Could not revoke grant ${grant.grantId} after the kubeconfig write failed: ${errorMessage(revokeErr)}. ` +
            `The broker removes it at ${grant.expiresAt} at the latest.`,
        ),
    );
    throw err;
  }

  if (inputs.exportKubeconfig)
    c.exportVariable('KUBECONFIG', kubeconfigList(kubeconfigPath, deps.env.KUBECONFIG));
  if (inputs.exportKubeConfigPath) c.exportVariable('KUBE_CONFIG_PATH', kubeconfigPath);
  c.setOutput('kubeconfig', kubeconfigPath);
  c.setOutput('context', inputs.contextName);
  c.setOutput('namespace', grant.namespace);
  c.setOutput('service-account', serviceAccountUser(grant.namespace, grant.serviceAccount));
  c.setOutput('expires-at', grant.expiresAt);
  c.setOutput('grant-id', grant.grantId);
  const exported = [
    ...(inputs.exportKubeconfig ? ['KUBECONFIG'] : []),
    ...(inputs.exportKubeConfigPath ? ['KUBE_CONFIG_PATH'] : []),
  ];
  c.info(
    `Wrote kubeconfig ${kubeconfigPath} (context ${inputs.contextName})` +
      (exported.length > 0 ? `; exported ${exported.join(' and ')} for the following steps.` : '.'),
  );

  if (inputs.jobSummary && deps.env.GITHUB_STEP_SUMMARY) {
    await deps
      .writeSummary(renderSummary(grant, inputs.contextName))
      .catch((err: unknown) => c.warning(`Could not write the job summary: ${errorMessage(err)}`));
  }
}

/**
 * This grant's file first, then what KUBECONFIG already listed (an earlier call's grant, the
 * user's own files): kubectl merges the list, so every context stays usable, and the first file's
 * current-context (this grant's) becomes the current one.
 */
export function kubeconfigList(path: string, previous: string | undefined): string {
  const kept = (previous ?? '').split(delimiter).filter((p) => p !== '' && p !== path);
  return [path, ...new Set(kept)].join(delimiter);
}

async function exchange(
  deps: MainDeps,
  inputs: Readonly<ActionInputs>,
  broker: BrokerClient,
): Promise<ExchangeResponse> {
  const { core: c, clock } = deps;
  const deadline = clock.now() + EXCHANGE_DEADLINE_MS;
  const request: ExchangeRequest = {
    namespace: inputs.namespace,
    role: inputs.role,
    ...(inputs.ttlSeconds !== undefined ? { ttlSeconds: inputs.ttlSeconds } : {}),
  };
  const common = {
    deadline,
    sleep: (ms: number) => clock.sleep(ms),
    now: () => clock.now(),
    random: () => clock.random(),
    log: (message: string) => c.info(message),
  };

  c.info(`Requesting ${inputs.role} in namespace ${inputs.namespace} from ${inputs.brokerUrl.origin}.`);
  c.debug(
    `Exchange request: ${JSON.stringify(request)}; broker ${describeRoute(inputs.brokerUrl, deps.env)}.`,
  );
  if (deps.env.ACTIONS_ID_TOKEN_REQUEST_URL)
    c.debug(
      `OIDC token for audience "${inputs.audience}": runner token service ${describeRoute(new URL(deps.env.ACTIONS_ID_TOKEN_REQUEST_URL), deps.env)}.`,
    );
  let presented: string | undefined;
  const answer = retry(
    async () => {
      // A fresh JWT per attempt: the broker accepts each token once (its jti), and a response lost
      // in transit may have consumed it; a long retry would also outlive the JWT's 5 minutes.
      const jwt = await retry(
        () =>
          deps.getIdToken(inputs.audience).catch((err: unknown) => {
            throw new Error(
              `Could not get a GitHub OIDC token for audience "${inputs.audience}": ${errorMessage(err)}`,
            );
          }),
        { ...common, label: 'GitHub OIDC token', attempts: 4, classify: () => ({ retry: true }) },
      );
      c.setSecret(jwt);
      presented = jwt;
      c.debug('Got a GitHub OIDC token; sending the exchange.');
      return broker.exchange(jwt, request);
    },
    { ...common, label: 'broker exchange', attempts: 6, classify: classifyBrokerError },
  );
  return answer.then(
    (grant) => {
      c.debug(`Exchange answered: grant ${grant.grantId}, token until ${grant.tokenExpiresAt}.`);
      return grant;
    },
    (err: unknown) => {
      // The author usually cannot read the broker's log: show what this job presented. Decoded
      // claims only; the token stays masked and unprinted.
      if (
        err instanceof BrokerRefusal &&
        err.fromBroker &&
        presented &&
        err.status < 500 &&
        err.status !== 429
      )
        c.info(renderClaims(presentedClaims(presented)));
      throw err;
    },
  );
}

async function writeKubeconfig(
  deps: MainDeps,
  inputs: Readonly<ActionInputs>,
  grant: ExchangeResponse,
): Promise<string> {
  const { core: c } = deps;
  let dir: string | undefined;
  const privateDir = async (): Promise<string> => {
    if (dir === undefined) {
      dir = await createPrivateDir(inputs.runnerTemp, KUBECONFIG_DIR_PREFIX);
      c.saveState(STATE.dir, dir);
    }
    return dir;
  };
  const plugin =
    inputs.credentials === 'exec'
      ? await writeCredentialCache(deps, inputs, grant, await privateDir())
      : undefined;
  const contents = renderKubeconfig(grant, inputs.contextName, plugin);
  if (inputs.kubeconfigPath) {
    // The input was checked against the workspace textually; a symlinked parent could still lead
    // back into it, so compare the real locations too.
    if (inputs.workspace) {
      const parent = await realDirectoryOf(inputs.kubeconfigPath);
      const ws = await realpath(inputs.workspace).catch(() => inputs.workspace as string);
      if (parent === ws || parent.startsWith(`${ws}/`))
        throw new UnsafePathError(
          `Input "kubeconfig-path" resolves into GITHUB_WORKSPACE (${parent}); use a path under RUNNER_TEMP.`,
        );
    }
    await writeNewPrivateFile(inputs.kubeconfigPath, contents);
    c.saveState(STATE.kubeconfigPath, inputs.kubeconfigPath);
    return inputs.kubeconfigPath;
  }
  const path = join(await privateDir(), 'kubeconfig');
  c.saveState(STATE.kubeconfigPath, path);
  await writeNewPrivateFile(path, contents);
  return path;
}

/** credentials: exec: the token goes to the plugin's cache in the private directory, not the kubeconfig. */
async function writeCredentialCache(
  deps: MainDeps,
  inputs: Readonly<ActionInputs>,
  grant: ExchangeResponse,
  dir: string,
): Promise<ExecPlugin> {
  const path = join(dir, CREDENTIAL_CACHE_FILE);
  deps.core.saveState(STATE.credentialCache, path);
  await writeNewCredentialCache(path, {
    version: 1,
    grantId: grant.grantId,
    token: grant.token,
    tokenExpiresAt: grant.tokenExpiresAt,
    expiresAt: grant.expiresAt,
    grantedAt: new Date(deps.clock.now()).toISOString(),
    brokerUrl: inputs.brokerUrl.href,
    ...(inputs.brokerCa ? { brokerCa: inputs.brokerCa } : {}),
    audience: inputs.audience,
  });
  const { node, script } = deps.credentialPlugin ?? bundledCredentialPlugin();
  return { command: node, args: [script, path] };
}
