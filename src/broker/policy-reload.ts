// Hot reload of the policy file. The directory is watched, not the file: a mounted ConfigMap is
// updated by swapping a symlink next to the file (..data), which a watch on the file itself never
// sees. Events are debounced (an editor or kubelet writes in several steps), and a slow poll
// catches what a watch can miss (some network filesystems; a watch that failed). Nothing happens
// unless the file's digest changed, and a changed file is applied only once it has stopped
// changing: the same new digest read twice, a debounce apart, on the watch's path and the poll's
// alike (a half-written file can be valid YAML that grants what the whole file refuses). A new
// version is then read, validated and vetted completely (live-policy.ts) before it takes over. A
// bad one is logged and counted once, and the running policy stays.
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../shared/errors.js';
import type { LivePolicy } from './live-policy.js';
import type { Logger } from './logger.js';
import type { BrokerMetrics } from './metrics.js';
import { parsePolicyVersion, policyDigest, readPolicyText } from './policy/load-policy.js';
import type { PolicyContext } from './policy/parse-policy.js';

export const RELOAD_DEFAULTS = Object.freeze({ debounceMs: 500, pollMs: 30_000 });

export interface PolicyReloadOptions {
  path: string;
  context: PolicyContext;
  debounceMs?: number;
  pollMs?: number;
  /** Waits the debounce between the two readings (a test replaces the timer). */
  settle?: (ms: number) => Promise<void>;
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

export interface PolicyReload {
  /** Looks at the file now (what the watch and the poll call); resolves when the look is done. */
  check(): Promise<void>;
  stop(): void;
}

export function startPolicyReload(
  live: Pick<LivePolicy, 'sha256' | 'replace'>,
  options: PolicyReloadOptions,
  deps: { logger: Logger; metrics: Pick<BrokerMetrics, 'policyReloadFailures'> },
): PolicyReload {
  const { path, context } = options;
  const debounceMs = options.debounceMs ?? RELOAD_DEFAULTS.debounceMs;
  /** The digest of the last version refused, so a broken file is reported once, not every poll. */
  let refused: string | undefined;
  let inFlight: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const settle = options.settle ?? sleep;
  /** The file's bytes, or undefined once it was refused as unreadable. */
  const read = (): Buffer | undefined => {
    try {
      return readPolicyText(path);
    } catch (err) {
      refuse(`unreadable:${errorMessage(err)}`, err);
      return undefined;
    }
  };

  const attempt = async (): Promise<void> => {
    const bytes = read();
    if (!bytes) return;
    const sha256 = policyDigest(bytes);
    if (sha256 === live.sha256()) {
      refused = undefined; // back to the running version: a later breakage is news again
      return;
    }
    if (sha256 === refused) return;
    // Still being written? Only a digest seen again a debounce later is a version.
    await settle(debounceMs);
    if (stopped) return;
    const settled = read();
    if (!settled) return;
    if (policyDigest(settled) !== sha256) {
      again = true;
      return;
    }
    let loaded: { rules: number; namespaces: readonly string[] };
    try {
      const next = parsePolicyVersion(bytes, path, context);
      loaded = { rules: next.policy.rules.length, namespaces: next.policy.namespaces() };
      await live.replace(next.policy, sha256);
    } catch (err) {
      return refuse(sha256, err);
    }
    refused = undefined;
    if (!stopped) deps.logger.info('policy reloaded', { sha256, ...loaded });
  };

  const refuse = (key: string, err: unknown) => {
    if (key === refused || stopped) return;
    refused = key;
    deps.metrics.policyReloadFailures.inc();
    deps.logger.error('changed policy refused; the running policy stays', {
      file: path,
      running: live.sha256(),
      error: errorMessage(err),
    });
  };

  const check = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = (async () => {
      do {
        again = false;
        await attempt();
      } while (again && !stopped);
    })().finally(() => (inFlight = undefined));
    return inFlight;
  };

  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), debounceMs);
    timer.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    // Any entry: ConfigMap updates rename ..data, editors rename a temporary file over the policy.
    // The digest decides whether anything changed.
    watcher = watch(dirname(path), { persistent: false }, soon);
    watcher.on('error', (err) =>
      deps.logger.warn('policy directory watch failed; changes are found by polling only', {
        error: errorMessage(err),
      }),
    );
  } catch (err) {
    deps.logger.warn('cannot watch the policy directory; changes are found by polling only', {
      error: errorMessage(err),
    });
  }
  const poll = setInterval(() => void check(), options.pollMs ?? RELOAD_DEFAULTS.pollMs);
  poll.unref();

  return {
    check,
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
