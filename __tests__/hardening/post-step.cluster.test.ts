// The post step in the situations a runner produces besides the happy path (issue 7): run twice,
// run without main, run after main failed before or after the grant. Nothing faked: the built
// bundles (dist/main, dist/post) run as the runner runs them (test/support/runner.ts) against the
// real broker bundle over HTTPS and the real control plane. In every case post exits 0, says what
// it did in an info line, warns about nothing, and leaves no grant and no kubeconfig behind.
// (__tests__/action/bundle.test.ts covers the same entry points against a stub broker.)
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { managedObjects } from '../../test/support/managed-objects.js';
import type { RunningBroker } from '../../test/support/broker.js';
import { waitFor } from '../../test/support/cluster.js';
import { cleanupCountingLeaks, startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';
import { ensureActionBuilt, type RunnerJob, type StepResult } from '../../test/support/runner.js';

let env: BrokerEnv;
let broker: RunningBroker;
const tally = { inputs: 0, faults: 0 };

beforeAll(async () => {
  await ensureActionBuilt();
  env = await startBrokerEnv({ namespaces: ['post-step'], policy: { rules: [{ roles: ['deployer'] }] } });
  broker = await env.startBroker();
}, 120_000);

afterAll(async () => {
  const left = await cleanupCountingLeaks(
    env,
    (leaked) =>
      `post-step: inputs tried ${tally.inputs}, faults injected ${tally.faults}, objects leaked ${leaked}`,
  );
  expect(left).toEqual([]);
});

const inputs = (overrides: Record<string, string> = {}) =>
  env.actionInputs(broker, { role: 'deployer', ttl: '600', ...overrides });

async function runMain(job: RunnerJob, overrides: Record<string, string> = {}): Promise<StepResult> {
  tally.inputs += 1;
  return job.main(inputs(overrides));
}
async function runPost(job: RunnerJob): Promise<StepResult> {
  tally.inputs += 1;
  return job.post();
}

/**
 * Waits until no object of the grant is left. Eventually, not at once: the broker creates the
 * self-revoke Role + RoleBinding just after its answer (grants/grants.ts), so a revocation that
 * follows the exchange within milliseconds (main revoking at once) can precede them; they are
 * owned by the deleted ServiceAccount, and the garbage collector removes them.
 */
const noObjectLeftOf = (grantId: string) =>
  waitFor(`no object of ${grantId}`, () =>
    managedObjects([env.ns]).some((o) => o.includes(grantId)) ? undefined : true,
  );

/** A harmless post: exit 0, nothing on the warning/error channels, no stack traces. */
function expectQuietSuccess(post: StepResult): void {
  expect({ exitCode: post.exitCode, warnings: post.warnings, errors: post.errors }).toEqual({
    exitCode: 0,
    warnings: [],
    errors: [],
  });
  expect(post.stderr).toBe('');
}

/** The broker's audit lines about one grant, by action. */
const auditOf = (grantId: string) =>
  broker
    .audit()
    .filter((l) => l.grantId === grantId)
    .map((l) => `${String(l.action)}${l.reason ? `:${String(l.reason)}` : ''}`);

/** Audit lines reach us through the broker's stdout pipe: wait until `count` are there. */
const auditSettled = (what: () => unknown[], count: number) =>
  waitFor(`${count} audit lines`, () => (what().length >= count ? true : undefined));

describe('post step', () => {
  test('after a real main, post twice: the first revokes and shreds, the second only says there is nothing left', async () => {
    await env.withJob(async (job) => {
      const main = await runMain(job);
      expect(main.exitCode).toBe(0);
      const grantId = main.outputs['grant-id']!;
      const path = main.outputs.kubeconfig!;
      expect(managedObjects([env.ns]).filter((o) => o.includes(grantId))).not.toEqual([]);

      const first = await runPost(job);
      expectQuietSuccess(first);
      expect(first.log).toContain(`Revoked grant ${grantId} through the broker.`);
      expect(existsSync(path)).toBe(false);
      expect(existsSync(dirname(path))).toBe(false);
      await noObjectLeftOf(grantId);

      const second = await runPost(job);
      expectQuietSuccess(second);
      expect(second.log).toContain(
        `Kubeconfig ${path} no longer exists (cleaned up already?); nothing to revoke grant ${grantId} with.`,
      );
      expect(second.log).not.toContain('Revoked');
      expect(second.log).not.toContain('Shredded');
      // The second post did not even ask the broker: one exchange and one revocation, no denial.
      await auditSettled(() => auditOf(grantId), 2);
      expect(auditOf(grantId)).toEqual(['exchange', 'revocation']);
      expect(readdirSync(job.runnerTemp)).toEqual([]);
    });
  });

  test('post with no state at all (main never ran): exit 0 with one info line, nothing touched', async () => {
    await env.withJob(async (job) => {
      const auditBefore = broker.audit().length;
      const post = await runPost(job);
      expectQuietSuccess(post);
      expect(post.log).toBe(
        'Nothing to clean up: the main step saved no state (it did not run or stopped before starting).',
      );
      expect(broker.audit().length).toBe(auditBefore);
      expect(readdirSync(job.runnerTemp)).toEqual([]);
    });
  });

  test('main refused by the broker (403): post exits 0, nothing to revoke, no file, no cluster object', async () => {
    await env.withJob(async (job) => {
      const before = managedObjects([env.ns]);
      const auditBefore = broker.audit().length;
      tally.faults += 1;
      const main = await runMain(job, { namespace: 'kube-system' });
      expect(main.exitCode).toBe(1);
      expect(main.errors[0]).toMatch(/\(ERR_FORBIDDEN, HTTP 403, request id [^)]+\)/);
      // main got as far as saving its first state entries: post has something to read.
      expect(Object.keys(main.savedState).sort()).toEqual(['broker-ca', 'broker-url', 'revoke']);

      const post = await runPost(job);
      expectQuietSuccess(post);
      expect(post.log).toBe('No grant was issued; nothing to revoke.');
      expect(readdirSync(job.runnerTemp)).toEqual([]);
      expect(managedObjects([env.ns])).toEqual(before);
      // The broker saw the refused exchange and nothing else: post sent it no request.
      await auditSettled(() => broker.audit().slice(auditBefore), 1);
      expect(
        broker
          .audit()
          .slice(auditBefore)
          .map((l) => `${String(l.action)}:${String(l.reason)}`),
      ).toEqual(['denial:namespace_not_allowed']);
    });
  });

  test('main failed after the grant (kubeconfig-path already exists): main revokes at once; post leaves the existing file alone', async () => {
    await env.withJob(async (job) => {
      // A file the job did not expect to be there; it must be neither overwritten nor shredded.
      const existing = join(job.runnerTemp, 'kubeconfig');
      writeFileSync(existing, 'someone else\n', { mode: 0o600 });
      const mtime = statSync(existing).mtimeMs;
      tally.faults += 1;
      const main = await runMain(job, { 'kubeconfig-path': existing });
      expect(main.exitCode).toBe(1);
      const grantId = main.savedState['grant-id']!;
      expect(grantId).toMatch(/^gha-/);
      expect(main.log).toContain(`Revoked grant ${grantId} because its kubeconfig could not be written.`);
      expect(main.savedState['kubeconfig-path']).toBeUndefined();
      await noObjectLeftOf(grantId);

      const post = await runPost(job);
      expectQuietSuccess(post);
      expect(post.log).toBe(
        `Grant ${grantId} has no kubeconfig (main stopped before writing it), so nothing to revoke it with.`,
      );
      expect(readFileSync(existing, 'utf8')).toBe('someone else\n');
      expect(statSync(existing).mtimeMs).toBe(mtime);
      expect(readdirSync(job.runnerTemp)).toEqual(['kubeconfig']);
      await auditSettled(() => auditOf(grantId), 2);
      expect(auditOf(grantId)).toEqual(['exchange', 'revocation']);
    });
  });
});
