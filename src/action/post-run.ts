// The post step (runs with `post-if: always()`): revoke the grant, then shred the kubeconfig (and,
// with credentials: exec, the plugin's cache: the whole private directory).
// A chain of early returns, each saying in one line why it stops. Revocation failures are
// warnings, never a failed job: the broker's reaper removes every grant at its expiry anyway.
// Safe to run twice, or without main: it only acts on what main recorded in the step state.
import { readFile } from 'node:fs/promises';
import { appendSummary, runnerCore, systemClock, type ActionCore, type Clock } from './action-core.js';
import { BrokerRefusal, classifyBrokerError, createBrokerClient } from './broker-client.js';
import { revokeDirect, type DirectRevokeInput, type DirectRevokeResult } from './direct-revoke.js';
import { createNodeTransport, NetworkError, type HttpTransport } from './http-transport.js';
import { parseCredentialCache } from './credential-cache.js';
import { readGrantCredential, type GrantCredential } from './kubeconfig-credential.js';
import { retry } from './retry.js';
import { shredDirectory, shredFile } from './safe-fs.js';
import { readPostState, type PostState } from './state.js';
import { renderUsageSummary, renderUsageUnavailable } from './usage-summary.js';
import { errorMessage } from '../shared/errors.js';

export interface PostDeps {
  core: ActionCore;
  createTransport: (ca: string | undefined) => HttpTransport;
  /** The fallback straight at the API server, with the grant's own token. */
  revokeDirect: (input: DirectRevokeInput) => Promise<DirectRevokeResult>;
  readFile: (path: string) => Promise<string>;
  clock: Clock;
  /** Appends Markdown to the job summary (the grant's usage, as the broker counted it). */
  writeSummary?: (markdown: string) => Promise<void>;
}

/** Short: post runs at job end and should not hold the runner for long when the broker is down. */
export const REVOKE_DEADLINE_MS = 20_000;

export function defaultPostDeps(): PostDeps {
  return {
    core: runnerCore,
    createTransport: (ca) => createNodeTransport({ ca, proxyEnv: process.env }),
    revokeDirect,
    readFile: (path) => readFile(path, 'utf8'),
    clock: systemClock,
    writeSummary: appendSummary,
  };
}

/** Entry for the runner and @github/local-action: never throws and never fails the job. */
export async function run(deps: PostDeps = defaultPostDeps()): Promise<void> {
  try {
    await runPost(deps);
  } catch (err) {
    deps.core.warning(`Post step problem: ${errorMessage(err)}`);
  }
}

export async function runPost(deps: PostDeps): Promise<void> {
  const state = readPostState((name) => deps.core.getState(name));
  if (!state) {
    deps.core.info(
      'Nothing to clean up: the main step saved no state (it did not run or stopped before starting).',
    );
    return;
  }
  try {
    await revokeGrant(deps, state);
  } catch (err) {
    deps.core.warning(
      `Could not revoke grant ${state.grantId}: ${errorMessage(err)}. ` +
        `The broker removes it at ${state.expiresAt || 'its expiry'} at the latest.`,
    );
  } finally {
    await removeFiles(deps, state);
  }
}

async function revokeGrant(deps: PostDeps, state: PostState): Promise<void> {
  const c = deps.core;
  if (!state.grantId) {
    c.info('No grant was issued; nothing to revoke.');
    return;
  }
  if (!state.revoke) {
    c.info(`Not revoking grant ${state.grantId} (input revoke is false); it expires at ${state.expiresAt}.`);
    return;
  }
  if (!state.kubeconfigPath) {
    c.info(
      `Grant ${state.grantId} has no kubeconfig (main stopped before writing it), so nothing to revoke it with.`,
    );
    return;
  }
  let text: string;
  try {
    text = await deps.readFile(state.kubeconfigPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      c.info(
        `Kubeconfig ${state.kubeconfigPath} no longer exists (cleaned up already?); nothing to revoke grant ${state.grantId} with.`,
      );
      return;
    }
    throw err;
  }
  // credentials: exec: the current token (perhaps renewed since main) is in the plugin's cache.
  const cache = state.credentialCache
    ? parseCredentialCache(await deps.readFile(state.credentialCache))
    : undefined;
  const credential = readGrantCredential(text, cache?.token);
  if (!credential)
    throw new Error(`kubeconfig ${state.kubeconfigPath} no longer holds the grant's credential`);
  // Post runs in a new process: register the token again before anything could echo it.
  c.setSecret(credential.token);

  // The grant's last end (renewals move it): past it, the grant ended by itself and the reaper removes it.
  const endsAt = Date.parse(cache?.expiresAt ?? state.expiresAt);
  const ended = Number.isFinite(endsAt) && deps.clock.now() >= endsAt;
  const outcome = await revokeThroughBroker(deps, state, credential, ended);
  if (outcome === 'done') return;
  // In gateway mode the token works at the gateway only, which is the broker itself: when no
  // replica answers there is nowhere else to revoke, and the reaper ends the grant at its expiry.
  if (state.mode === 'gateway')
    throw new Error(
      `the broker is unreachable (${outcome.reason}), and a gateway-mode grant can only be revoked through it`,
    );
  c.info(
    `Broker unreachable (${outcome.reason}); revoking grant ${state.grantId} directly at the API server.`,
  );
  const result = await deps.revokeDirect({
    ...credential,
    namespace: state.namespace || credential.namespace,
    grantId: state.grantId,
  });
  c.info(
    `Revoked grant ${state.grantId} directly: RoleBinding ${result.roleBinding}, ServiceAccount ${result.serviceAccount}.`,
  );
}

async function revokeThroughBroker(
  deps: PostDeps,
  state: PostState,
  credential: GrantCredential,
  ended: boolean,
): Promise<'done' | { reason: string }> {
  const { core: c, clock } = deps;
  let brokerUrl: URL;
  try {
    brokerUrl = new URL(state.brokerUrl);
  } catch {
    return { reason: 'no broker URL in the step state' };
  }
  const broker = createBrokerClient({
    baseUrl: brokerUrl,
    transport: deps.createTransport(state.brokerCa || undefined),
    now: () => clock.now(),
    timeoutMs: 8_000,
  });
  try {
    const answer = await retry(() => broker.revoke(state.grantId, credential.token), {
      label: 'broker revocation',
      attempts: 3,
      deadline: clock.now() + REVOKE_DEADLINE_MS,
      baseDelayMs: 250,
      maxDelayMs: 2_000,
      classify: classifyBrokerError,
      sleep: (ms) => clock.sleep(ms),
      now: () => clock.now(),
      random: () => clock.random(),
      log: (m) => c.info(m),
    });
    c.info(`Revoked grant ${state.grantId} through the broker.`);
    const summary = answer.usage
      ? renderUsageSummary(answer.usage)
      : answer.usageUnavailable && renderUsageUnavailable(answer.usageUnavailable);
    // `job-summary: false` (the same input main reads) leaves this section out too.
    const wanted = !['false', 'False', 'FALSE'].includes(c.getInput('job-summary'));
    if (summary && wanted && deps.writeSummary)
      await deps
        .writeSummary(summary)
        .catch((err: unknown) => c.warning(`Could not write the usage summary: ${errorMessage(err)}`));
    return 'done';
  } catch (err) {
    // Only the broker's own "not found" means gone: an ingress's 404 page says nothing about the grant.
    if (err instanceof BrokerRefusal && err.fromBroker && err.code === 'ERR_NOT_FOUND') {
      c.info(`Grant ${state.grantId} was already gone.`);
      return 'done';
    }
    // An ended grant's token no longer authenticates once the reaper deleted its ServiceAccount (or the
    // token expired): the broker answers 401. Nothing is wrong (e.g. credentials: exec reached the
    // session limit), and the reaper removes whatever is left.
    if (ended && err instanceof BrokerRefusal && err.fromBroker && err.status === 401) {
      c.info(
        `Grant ${state.grantId} had already ended (${errorMessage(err)}); the broker's reaper removes what is left of it.`,
      );
      return 'done';
    }
    // "Could not reach a working broker" falls back, and so does an answer that is not the broker's;
    // a clear refusal by the broker is reported as is.
    if (
      err instanceof NetworkError ||
      (err instanceof BrokerRefusal && (!err.fromBroker || classifyBrokerError(err).retry))
    )
      return { reason: errorMessage(err) };
    throw err;
  }
}

async function removeFiles(deps: PostDeps, state: PostState): Promise<void> {
  const c = deps.core;
  try {
    if (state.kubeconfigPath && (await shredFile(state.kubeconfigPath)))
      c.info(`Shredded kubeconfig ${state.kubeconfigPath}.`);
    if (state.dir && (await shredDirectory(state.dir))) c.info(`Removed directory ${state.dir}.`);
  } catch (err) {
    c.warning(`Could not remove the kubeconfig: ${errorMessage(err)}`);
  }
}
