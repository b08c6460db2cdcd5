// `npm run demo` really does what its transcript says. The script runs as a child process (as
// `npm run demo` runs it) against the control plane jest's global setup started, and every claim
// in the transcript is checked against the cluster itself: the API server's audit log has the
// allowed and the denied call under the credential id the demo printed, the grant and the demo
// namespaces are gone afterwards, and no token or JWT appears in the output. Ctrl-C is checked
// the way a terminal sends it: SIGINT to the whole process group.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyExampleClusterRoles } from '../../test/support/deploy-rbac.js';
import { repoRoot } from '../../test/support/repo-root.js';
import { adminKubeconfigPath, coreApi, kubectl, readAudit } from '../../test/support/cluster.js';
import { MARKERS, parseDemoArgs, UsageError } from '../../scripts/demo.js';

interface DemoRun {
  child: ChildProcess;
  output: () => string;
  /** Resolves when a line containing `text` was printed. */
  printed: (text: string) => Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// The command `npm run demo` runs (package.json), so the test launches the demo the same way.
const [demoBin, ...demoArgs] = (
  JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: { demo: string } }
).scripts.demo.split(' ');

/** `npm run demo -- <args>` without npm, in its own process group like a terminal's foreground job. */
function startDemo(args: string[]): DemoRun {
  const bin = demoBin === 'node' ? process.execPath : join(repoRoot, 'node_modules', '.bin', demoBin!);
  const child = spawn(bin, [...demoArgs, ...args], {
    cwd: repoRoot,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.filter((x) => out.includes(x.text))) {
      w.resolve();
      waiters.splice(waiters.indexOf(w), 1);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    child,
    output: () => out,
    printed: (text) =>
      out.includes(text)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ text, resolve })),
    exit: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
  };
}

// Generous: a demo takes ~15 s alone, but shares two cores with the rest of the suite.
const DEMO_TIMEOUT_MS = 120_000;

const JWT_SHAPE = /eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}/;

/** The value after `label` on the line of a ✔ marker. */
function markerLine(output: string, marker: string): string {
  const line = output.split('\n').find((l) => l.includes(`✔ ${marker}:`));
  if (!line) throw new Error(`no "✔ ${marker}:" line in the transcript:\n${output}`);
  return line;
}

async function namespaceGoneOrTerminating(name: string): Promise<boolean> {
  try {
    const ns = await coreApi().readNamespace({ name });
    return ns.metadata?.deletionTimestamp !== undefined;
  } catch {
    return true;
  }
}

const demoNamespaces = (output: string): string[] => [
  ...new Set(output.match(/demo-[a-z0-9-]+-[0-9a-f]{6}/g)),
];

describe('npm run demo', () => {
  const runs: DemoRun[] = [];
  beforeAll(() => {
    // The --kubeconfig run deletes the example ClusterRoles if it had to create them; other test
    // files use them too, so make sure they exist before it starts.
    applyExampleClusterRoles();
  });
  afterAll(() => {
    for (const r of runs) if (r.child.exitCode === null) process.kill(-r.child.pid!, 'SIGKILL');
  });

  test.concurrent(
    'on the local control plane: all six results, each one true in the cluster',
    async () => {
      const run = startDemo([]);
      runs.push(run);
      const { code } = await run.exit;
      const out = run.output();
      expect({ code, out }).toEqual({ code: 0, out: expect.stringContaining('Demo finished') });

      // The six results, in the order the flow produces them.
      const order = Object.values(MARKERS).map((m) => out.indexOf(`✔ ${m}:`));
      expect(order.every((i) => i >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);

      const granted = markerLine(out, MARKERS.granted);
      const [, grantId, namespace] = /grant (gha-[0-9a-f]+) = system:serviceaccount:([a-z0-9-]+):/.exec(
        granted,
      )!;
      const credentialId = /credential (JTI=[0-9a-f-]+)/.exec(granted)![1]!;
      expect(markerLine(out, MARKERS.audit)).toContain(credentialId);
      expect(markerLine(out, MARKERS.rejected)).toMatch(
        /401 Unauthorized [\d.]+ s after the post step ended/,
      );

      // The API server's own audit log: the allowed create and the denied list, under that id and
      // that identity.
      const events = readAudit().filter(
        (e) =>
          e.stage === 'ResponseComplete' &&
          e.user.extra?.['authentication.kubernetes.io/credential-id']?.includes(credentialId!),
      );
      expect(events.every((e) => e.user.username === `system:serviceaccount:${namespace}:${grantId}`)).toBe(
        true,
      );
      expect(events).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            verb: 'create',
            objectRef: expect.objectContaining({ resource: 'configmaps', namespace }),
            responseStatus: expect.objectContaining({ code: 201 }),
          }),
          expect.objectContaining({
            verb: 'list',
            objectRef: expect.objectContaining({ resource: 'secrets', namespace }),
            responseStatus: expect.objectContaining({ code: 403 }),
          }),
        ]),
      );

      // Cleaned up: its namespaces are being deleted and the grant's ServiceAccount is gone; the
      // control plane it found running is still running.
      const namespaces = demoNamespaces(out);
      expect(namespaces).toHaveLength(2);
      for (const ns of namespaces) expect(await namespaceGoneOrTerminating(ns)).toBe(true);
      const sa = kubectl(adminKubeconfigPath(), ['-n', namespace!, 'get', 'serviceaccount', grantId!]);
      expect(sa.status).not.toBe(0);
      expect(kubectl(adminKubeconfigPath(), ['get', '--raw', '/readyz']).stdout).toBe('ok');

      // No secret in the transcript: no JWT-shaped string at all (GitHub and Kubernetes tokens are JWTs).
      expect(out).not.toMatch(JWT_SHAPE);
    },
    DEMO_TIMEOUT_MS,
  );

  test.concurrent(
    'with --kubeconfig: uses that cluster and says how to find the id in its audit log',
    async () => {
      const run = startDemo(['--kubeconfig', adminKubeconfigPath()]);
      runs.push(run);
      const { code } = await run.exit;
      const out = run.output();
      expect({ code, out }).toEqual({ code: 0, out: expect.stringContaining('Demo finished') });
      expect(out).toContain(`Use the existing cluster of ${adminKubeconfigPath()}`);
      expect(out).not.toContain('Start the local control plane');
      for (const m of Object.values(MARKERS)) expect(out).toContain(`✔ ${m}:`);
      const credentialId = /credential (JTI=[0-9a-f-]+)/.exec(markerLine(out, MARKERS.granted))![1]!;
      expect(out).toContain(
        `.user.extra["authentication.kubernetes.io/credential-id"]? == ["${credentialId}"]`,
      );
      expect(out).not.toMatch(JWT_SHAPE);
      for (const ns of demoNamespaces(out)) expect(await namespaceGoneOrTerminating(ns)).toBe(true);
    },
    DEMO_TIMEOUT_MS,
  );

  test(
    'Ctrl-C after kubectl ran: revokes the grant, deletes the namespaces and exits 130',
    async () => {
      const run = startDemo(['--kubeconfig', adminKubeconfigPath()]);
      runs.push(run);
      await run.printed(`✔ ${MARKERS.allowed}:`);
      const granted = markerLine(run.output(), MARKERS.granted);
      const [, grantId, namespace] = /grant (gha-[0-9a-f]+) = system:serviceaccount:([a-z0-9-]+):/.exec(
        granted,
      )!;
      process.kill(-run.child.pid!, 'SIGINT');
      const { code } = await run.exit;
      const out = run.output();
      expect({ code, out }).toEqual({ code: 130, out: expect.stringContaining('Interrupted (SIGINT)') });
      expect(out).toContain('ran the post step (revoke + shred)');
      expect(out).toContain('Cleaned up after');
      expect(out).not.toContain(`✔ ${MARKERS.audit}:`);
      const sa = kubectl(adminKubeconfigPath(), ['-n', namespace!, 'get', 'serviceaccount', grantId!]);
      expect(sa.status).not.toBe(0);
      for (const ns of demoNamespaces(out)) expect(await namespaceGoneOrTerminating(ns)).toBe(true);
      // The broker's cluster-scoped RBAC for this run is gone too.
      const brokerNs = demoNamespaces(out).find((n) => n.startsWith('demo-k8s-ea-'))!;
      const crb = kubectl(adminKubeconfigPath(), ['get', 'clusterrolebindings', '-o', 'name']).stdout;
      expect(crb).not.toContain(brokerNs);
    },
    DEMO_TIMEOUT_MS,
  );

  test('--help explains the options and exits 0; an unknown option exits 2', async () => {
    const help = startDemo(['--help']);
    runs.push(help);
    expect((await help.exit).code).toBe(0);
    for (const option of ['--keep', '--kubeconfig', 'npm run cluster:down', 'Ctrl-C'])
      expect(help.output()).toContain(option);
    const bad = startDemo(['--no-such-option']);
    runs.push(bad);
    expect((await bad.exit).code).toBe(2);
    expect(bad.output()).toContain("Unknown option '--no-such-option'");
  });
});

describe('parseDemoArgs', () => {
  test('reads the documented options', () => {
    expect(parseDemoArgs([])).toEqual({ keep: false, kubeconfig: undefined, help: false });
    expect(parseDemoArgs(['--keep'])).toEqual({ keep: true, kubeconfig: undefined, help: false });
    expect(parseDemoArgs(['--kubeconfig', '/k'])).toEqual({ keep: false, kubeconfig: '/k', help: false });
    expect(parseDemoArgs(['-h']).help).toBe(true);
  });

  test('refuses what it cannot do', () => {
    expect(() => parseDemoArgs(['--kubeconfig'])).toThrow(UsageError);
    expect(() => parseDemoArgs(['--kubeconfig', ''])).toThrow('--kubeconfig needs the path');
    expect(() => parseDemoArgs(['--keep', '--kubeconfig', '/k'])).toThrow('cannot be used with --kubeconfig');
    expect(() => parseDemoArgs(['extra'])).toThrow(UsageError);
  });
});
