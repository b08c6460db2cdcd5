// The policy file watch without a cluster: the directory is watched and events debounced, only a
// new digest leads to a reload, and only once the file has stopped changing (a half-written file is
// never applied, issue 24); a bad version is refused and counted once (however often the poll sees
// it again), and a version that fails vetting is refused like an invalid one.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import type { LivePolicy } from '../../src/broker/live-policy.js';
import { createLogger } from '../../src/broker/logger.js';
import { createMetrics, type BrokerMetrics } from '../../src/broker/metrics.js';
import { policyDigest } from '../../src/broker/policy/load-policy.js';
import { parsePolicy } from '../../src/broker/policy/parse-policy.js';
import { startPolicyReload, type PolicyReload } from '../../src/broker/policy-reload.js';
import type { PolicyEngine } from '../../src/broker/types.js';
import { waitFor } from '../../test/support/cluster.js';
import { policyYaml } from '../../test/support/policy.js';

const policyFor = (namespace: string) => policyYaml({ namespaces: [namespace] });

let dir: string;
let path: string;
let lines: string[];
let metrics: BrokerMetrics;
let reload: PolicyReload | undefined;
let replaced: { namespaces: readonly string[]; sha256: string | undefined }[];
let vettingFails: boolean;

function fakeLive(initial: string): Pick<LivePolicy, 'engine' | 'sha256' | 'replace' | 'stop'> {
  let sha = policyDigest(initial);
  return {
    engine: {} as PolicyEngine,
    sha256: () => sha,
    async replace(next, digest) {
      await Promise.resolve();
      if (vettingFails)
        throw new Error(
          'the policy binds roles that jobs may not be granted: ClusterRole "x": does not exist',
        );
      replaced.push({ namespaces: next.namespaces(), sha256: digest });
      sha = digest!;
    },
    stop: () => undefined,
  };
}

function start(initial: string, pollMs = 60_000, settle?: (ms: number) => Promise<void>, file = path): void {
  if (file === path) writeFileSync(path, initial);
  reload = startPolicyReload(
    fakeLive(initial),
    { path: file, context: {}, debounceMs: 50, pollMs, ...(settle && { settle }) },
    { logger: createLogger({ write: (l) => void lines.push(l) }), metrics },
  );
}

const failures = async () => (await metrics.policyReloadFailures.get()).values[0]?.value ?? 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-reload-'));
  path = join(dir, 'policy.yaml');
  lines = [];
  replaced = [];
  vettingFails = false;
  metrics = createMetrics();
});
afterEach(() => {
  reload?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a burst of writes is one reload, with the digest of the final content', async () => {
  start(policyFor('one'));
  writeFileSync(path, policyFor('two'));
  writeFileSync(path, policyFor('three'));
  await waitFor('the reload', () => (replaced.length > 0 ? true : undefined), 5_000, 20);
  await new Promise((r) => setTimeout(r, 200));
  expect(replaced).toEqual([{ namespaces: ['three'], sha256: policyDigest(policyFor('three')) }]);
  expect(
    lines.some((l) => l.includes('"msg":"policy reloaded"') && l.includes('"namespaces":["three"]')),
  ).toBe(true);
});

test('rewriting the same content, or touching another file of the directory, reloads nothing', async () => {
  start(policyFor('one'));
  writeFileSync(path, policyFor('one'));
  writeFileSync(join(dir, 'broker-config.yaml'), 'x: 1\n');
  await reload!.check();
  await new Promise((r) => setTimeout(r, 200));
  expect(replaced).toEqual([]);
  expect(await failures()).toBe(0);
});

test('an invalid version is refused, logged and counted once, however often it is seen', async () => {
  start(policyFor('one'));
  writeFileSync(path, `${policyFor('two')}\nnot: [closed\n`);
  await waitFor('the refusal', async () => ((await failures()) === 1 ? true : undefined), 5_000, 20);
  await reload!.check();
  await reload!.check();
  expect(await failures()).toBe(1);
  expect(replaced).toEqual([]);
  const errors = lines.filter((l) => l.includes('changed policy refused; the running policy stays'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toContain(`"running":"${policyDigest(policyFor('one'))}"`);
  // Fixed: it loads; broken again (other content): counted again.
  writeFileSync(path, policyFor('two'));
  await reload!.check();
  expect(replaced.map((r) => r.namespaces)).toEqual([['two']]);
  writeFileSync(path, 'rules: 3\n');
  await reload!.check();
  expect(await failures()).toBe(2);
});

test('a version whose vetting fails is refused like an invalid one', async () => {
  start(policyFor('one'));
  vettingFails = true;
  writeFileSync(path, policyFor('two'));
  await reload!.check();
  expect(await failures()).toBe(1);
  expect(lines.find((l) => l.includes('changed policy refused'))).toContain('does not exist');
  vettingFails = false;
  writeFileSync(path, policyFor('three'));
  await reload!.check();
  expect(replaced.map((r) => r.namespaces)).toEqual([['three']]);
});

test('a vanished file is refused once; the poll finds changes without any watch event', async () => {
  start(policyFor('one'), 100);
  unlinkSync(path);
  await waitFor('the refusal', async () => ((await failures()) === 1 ? true : undefined), 5_000, 20);
  expect(lines.find((l) => l.includes('changed policy refused'))).toContain(
    'cannot read the policy file (ENOENT)',
  );
  await new Promise((r) => setTimeout(r, 300));
  expect(await failures()).toBe(1);
  writeFileSync(path, policyFor('two'));
  await waitFor('the reload', () => (replaced.length > 0 ? true : undefined), 5_000, 20);
  expect(replaced[0]!.namespaces).toEqual(['two']);
});

test('stopped, it reloads nothing more', async () => {
  start(policyFor('one'), 50);
  reload!.stop();
  writeFileSync(path, policyFor('two'));
  await new Promise((r) => setTimeout(r, 300));
  await reload!.check();
  expect(replaced).toEqual([]);
});

describe('a changing file is applied only once it has stopped changing', () => {
  // The whole file restricts its rule to 10.0.0.0/8; cut before that line, it is still a valid
  // policy, one that grants from any address.
  const whole = policyYaml({ namespaces: ['two'], rules: [{ sourceRanges: ['10.0.0.0/8'] }] });
  const half = whole.slice(0, whole.indexOf('    sourceRanges:'));

  /** The debounce between the two readings, ended by the test: no timing in these tests. */
  function gatedSettle() {
    const waiting: (() => void)[] = [];
    return {
      settle: () => new Promise<void>((resolve) => void waiting.push(resolve)),
      waiting: () => waiting.length,
      release: () => waiting.splice(0).forEach((resolve) => resolve()),
    };
  }

  test('a half-written file is never applied, even by the poll; the whole one is', async () => {
    expect(() => parsePolicy(half, 'half.yaml')).not.toThrow();
    const gate = gatedSettle();
    start(policyFor('one'), 60_000, gate.settle);
    writeFileSync(path, half);
    const look = reload!.check(); // what the poll does: no watch event, no debounce before it
    await waitFor('the first reading', () => (gate.waiting() === 1 ? true : undefined), 5_000, 5);
    expect(replaced).toEqual([]); // the running policy still answers

    writeFileSync(path, whole); // the writer finishes within the debounce
    gate.release();
    await waitFor('the second reading', () => (gate.waiting() === 1 ? true : undefined), 5_000, 5);
    expect(replaced).toEqual([]); // changed since: read again, a debounce apart
    gate.release();
    await look;
    expect(replaced).toEqual([{ namespaces: ['two'], sha256: policyDigest(whole) }]);
    expect(await failures()).toBe(0);
  });

  test("the kubelet's ConfigMap update (a new directory, one rename of ..data) still reloads", async () => {
    const publish = (version: number, text: string) => {
      const data = `..2026_12_05_00_00_00.${version}`;
      mkdirSync(join(dir, data));
      writeFileSync(join(dir, data, 'policy.yaml'), text);
      symlinkSync(data, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    publish(1, policyFor('one'));
    const mounted = join(dir, 'mounted.yaml');
    symlinkSync('..data/policy.yaml', mounted);
    start(policyFor('one'), 60_000, undefined, mounted);
    publish(2, policyFor('two'));
    await waitFor('the reload', () => (replaced.length > 0 ? true : undefined), 5_000, 20);
    expect(replaced).toEqual([{ namespaces: ['two'], sha256: policyDigest(policyFor('two')) }]);
  });
});
