// The kubeconfig's exec credential plugin (dist/credential/index.js), run by kubectl, Helm, client-go
// or Terraform with the cache file as its argument. It prints an ExecCredential
// (client.authentication.k8s.io/v1) with the cached token while it is fresh; when renewal is due
// (credential-plan.ts) it gets a fresh GitHub OIDC token from the job's own
// ACTIONS_ID_TOKEN_REQUEST_* (never written anywhere), asks the broker to renew the grant, rewrites
// the cache atomically and prints the new credential. Under a lock, so racing plugins renew once.
// Errors: one line on stderr, exit 1; kubectl shows it. Nothing secret is ever printed there.
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { errorMessage } from '../shared/errors.js';
import { BrokerRefusal, classifyBrokerError, createBrokerClient } from './broker-client.js';
import {
  CacheError,
  readCredentialCache,
  replaceCredentialCache,
  type CredentialCache,
} from './credential-cache.js';
import { planCredential, type CredentialPlan } from './credential-plan.js';
import { withFileLock } from './file-lock.js';
import { replacePrivateFile } from './safe-fs.js';
import type { HttpTransport } from './http-types.js';
import { createIdTokenSource } from './id-token.js';
import type { Env } from './inputs.js';
import { retry } from './retry.js';

export interface CredentialDeps {
  /** The plugin's arguments (process.argv after the script). */
  args: readonly string[];
  env: Env;
  createTransport: (ca: string | undefined) => HttpTransport;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** The process that runs the plugin (kubectl): its failure line is printed once per such process. */
  parentPid?: number;
}

const PREFIX = 'k8s-ephemeral-access:';
/** A renewal gives up after this long; kubectl waits for the plugin without a limit of its own. */
export const RENEW_DEADLINE_MS = 20_000;
/** After a renewal failed for a reason that may pass, kubectl asks again this soon. */
const RETRY_SOON_MS = 15_000;

export function defaultCredentialDeps(): CredentialDeps {
  return {
    args: process.argv.slice(2),
    env: process.env,
    // Through HTTPS_PROXY/NO_PROXY like the main and post steps: kubectl passes the job's environment on.
    createTransport: (ca) => lazyNodeTransport(ca, process.env),
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    parentPid: process.ppid,
  };
}

/**
 * The plugin hands out its cached token on most calls, which needs no network: node:https and
 * node:tls are loaded on the first request only (on Node 24 they cost more than the rest of the
 * plugin's start; docs/benchmarks.md, finding 5).
 */
function lazyNodeTransport(ca: string | undefined, proxyEnv: Env): HttpTransport {
  let transport: Promise<HttpTransport> | undefined;
  return async (req) => {
    transport ??= import('./http-transport.js').then((m) => m.createNodeTransport({ ca, proxyEnv }));
    return (await transport)(req);
  };
}

/** Runs the plugin; the exit code. Never throws. */
export async function run(deps: CredentialDeps): Promise<number> {
  try {
    const { token, until } = await credential(deps);
    deps.stdout(`${execCredential(token, until)}\n`);
    return 0;
  } catch (err) {
    const line = `${PREFIX} ${oneLine(errorMessage(err))}\n`;
    if (await firstReport(deps, line)) deps.stderr(line);
    return 1;
  }
}

/**
 * kubectl runs the plugin again for every request while it fails (six times for one `kubectl get`
 * against an ended grant), and shows each run's stderr: the same line once per kubectl process is
 * enough. Remembered next to the cache (the grant's private directory, which post shreds); the line
 * never holds a secret. Anything unexpected prints the line.
 */
async function firstReport(deps: CredentialDeps, line: string): Promise<boolean> {
  const path = deps.args[0];
  if (deps.parentPid === undefined || deps.args.length !== 1 || !path || !isAbsolute(path)) return true;
  const marker = `${path}.reported`;
  const key = `${deps.parentPid}\n${line}`;
  try {
    if ((await readFile(marker, 'utf8')) === key) return false;
  } catch {
    // Not reported yet (or unreadable): report.
  }
  // The directory is gone after post: nothing to remember with, the line is printed each time.
  await replacePrivateFile(marker, key).catch(() => undefined);
  return true;
}

/** The ExecCredential kubectl reads; it asks again after `until` (whole seconds, rounded up). */
export function execCredential(token: string, until: number): string {
  const expirationTimestamp = new Date(Math.ceil(until / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  return JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: { token, expirationTimestamp },
  });
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

async function credential(deps: CredentialDeps): Promise<{ token: string; until: number }> {
  const path = deps.args[0];
  if (deps.args.length !== 1 || !path || !isAbsolute(path))
    throw new Error('usage: node credential/index.js <absolute path of the credential cache>');
  let cache = await readCache(deps, path);
  let plan = planCredential(cache, deps.now());
  if (plan.kind === 'renew') {
    const lock = { waitMs: RENEW_DEADLINE_MS + 5_000, staleMs: RENEW_DEADLINE_MS * 3, sleep: deps.sleep };
    ({ cache, plan } = await withFileLock(`${path}.lock`, lock, async () => {
      // Another plugin may have renewed while this one waited for the lock.
      const current = await readCache(deps, path);
      const next = planCredential(current, deps.now());
      return next.kind === 'renew' ? renewCache(deps, path, current, next) : { cache: current, plan: next };
    }));
  }
  if (plan.kind === 'fail') throw new Error(plan.message);
  if (plan.kind === 'renew') throw new Error(`grant ${cache.grantId} could not be renewed`);
  return { token: cache.token, until: plan.until };
}

/** Reads the cache; once more after a moment if it was being replaced (its old copy is shredded). */
async function readCache(deps: CredentialDeps, path: string): Promise<CredentialCache> {
  try {
    return await readCredentialCache(path);
  } catch (err) {
    if (!(err instanceof CacheError) || err.message !== 'is not JSON') throw cacheFailure(path, err);
    await deps.sleep(100);
    return readCredentialCache(path).catch((again: unknown) => {
      throw cacheFailure(path, again);
    });
  }
}

const cacheFailure = (path: string, err: unknown) =>
  new Error(`credential cache ${path} ${errorMessage(err)}`);

async function renewCache(
  deps: CredentialDeps,
  path: string,
  cache: CredentialCache,
  plan: Extract<CredentialPlan, { kind: 'renew' }>,
): Promise<{ cache: CredentialCache; plan: CredentialPlan }> {
  const now = deps.now();
  try {
    const renewed = await renewGrant(deps, cache);
    const next: CredentialCache = {
      ...cache,
      token: renewed.token,
      tokenExpiresAt: renewed.tokenExpiresAt,
      expiresAt: renewed.expiresAt,
      sessionEndsAt: renewed.sessionEndsAt,
      grantedAt: new Date(now).toISOString(),
    };
    await replaceCredentialCache(path, next);
    const after = planCredential(next, deps.now());
    // Renewed but not moved (another plugin's renewal, a broker clock ahead of ours): ask again soon.
    if (after.kind === 'renew' && after.fallbackUntil > 0)
      return {
        cache: next,
        plan: { kind: 'use', until: Math.min(after.fallbackUntil, now + RETRY_SOON_MS) },
      };
    return { cache: next, plan: after };
  } catch (err) {
    const why = errorMessage(err);
    // The broker's own 401/403/404 will not change on a retry: stop asking, use what is left.
    const final = err instanceof BrokerRefusal && err.fromBroker && [401, 403, 404].includes(err.status);
    const kept = final ? { ...cache, refused: why } : cache;
    if (final) await replaceCredentialCache(path, kept);
    if (plan.fallbackUntil === 0)
      throw new Error(`could not renew grant ${cache.grantId}, which ended at ${cache.expiresAt}: ${why}`, {
        cause: err,
      });
    deps.stderr(
      `${PREFIX} warning: could not renew grant ${cache.grantId}: ${oneLine(why)}; using its current token, valid until ${cache.expiresAt}\n`,
    );
    const until = final ? plan.fallbackUntil : Math.min(plan.fallbackUntil, now + RETRY_SOON_MS);
    return { cache: kept, plan: { kind: 'use', until } };
  }
}

async function renewGrant(deps: CredentialDeps, cache: CredentialCache) {
  if (!deps.env.ACTIONS_ID_TOKEN_REQUEST_URL || !deps.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN)
    throw new Error(
      'renewal needs a GitHub OIDC token, and ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: ' +
        'run kubectl in a step of the job that got the grant, with permissions id-token: write',
    );
  const getIdToken = createIdTokenSource(deps.env, deps.createTransport(undefined));
  const broker = createBrokerClient({
    baseUrl: new URL(cache.brokerUrl),
    transport: deps.createTransport(cache.brokerCa),
    now: deps.now,
    timeoutMs: 8_000,
  });
  const common = {
    deadline: deps.now() + RENEW_DEADLINE_MS,
    baseDelayMs: 250,
    maxDelayMs: 2_000,
    sleep: deps.sleep,
    now: deps.now,
    log: (m: string) => deps.stderr(`${PREFIX} ${oneLine(m)}\n`),
  };
  return retry(
    async () => {
      // A fresh JWT per attempt: the broker spends each one it receives.
      const jwt = await getIdToken(cache.audience).catch((err: unknown) => {
        throw new Error(`could not get a GitHub OIDC token: ${errorMessage(err)}`);
      });
      return broker.renew(cache.grantId, jwt, { grantToken: cache.token });
    },
    { ...common, label: 'broker renewal', attempts: 3, classify: classifyBrokerError },
  );
}
