// `npm run demo`: the whole flow on this machine, nothing faked, as a readable transcript.
//
//   local control plane (or an existing cluster) -> broker under deploy/'s RBAC with the example
//   policy -> the action's main step run as the runner runs it -> kubectl allowed and denied ->
//   post step -> grant gone, token rejected -> broker audit lines joined to the API server's audit
//   log by the token's credential id.
//
// The flow is the list of steps in demo/steps.ts. It reuses the test harness (test/support/) so the
// demo and the tests exercise the same pieces. Every resource it creates is registered on a
// clean-up stack the moment it exists, so a failure or Ctrl-C (SIGINT/SIGTERM) unwinds exactly what
// was made: post (revoke + shred) if main ran, broker, issuer, namespaces and, if this run started
// it, the control plane.
// Secrets are never printed: no GitHub JWT, no Kubernetes token, no kubeconfig contents; the
// token is kept in memory for the rejection check and shown only as its credential id.
//
// `npm run demo` runs this file in one node process (`node --import tsx`), not under the tsx CLI:
// the CLI re-sends a signal to its child when the child has not acknowledged it within 30 ms, and
// a Ctrl-C to the whole process group then arrived twice and read as "abandon the clean-up".
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CleanupStack } from './demo/cleanup-stack.js';
import { DemoContext, MARKERS } from './demo/context.js';
import { parseDemoArgs, USAGE, type DemoOptions } from './demo/options.js';
import { ReportedError, runSteps } from './demo/run-steps.js';
import { loadClusterScript } from './demo/steps/cluster.js';
import { demoSteps } from './demo/steps.js';
import { errorText, Transcript } from './demo/transcript.js';

export { MARKERS } from './demo/context.js';
export { parseDemoArgs, USAGE, UsageError, type DemoOptions } from './demo/options.js';

const exitCodeFor = (signal: NodeJS.Signals): number => 128 + (signal === 'SIGINT' ? 2 : 15);

async function main(): Promise<number> {
  let options: DemoOptions;
  try {
    options = parseDemoArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`demo: ${errorText(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const transcript = new Transcript();
  const cleanup = new CleanupStack((label, err) =>
    transcript.line(err ? `✘ could not finish "${label}": ${errorText(err)}` : `- ${label}`),
  );

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`demo: second ${signal}: exiting without finishing the clean-up\n`);
      process.exit(exitCodeFor(signal));
    }
    signalled = signal;
    const where = transcript.currentStep();
    transcript.heading(
      `Interrupted (${signal})${where ? ` in ${where}` : ''}: cleaning up (press Ctrl-C again to abandon the clean-up)`,
    );
    void cleanup.runAll().finally(() => {
      transcript.heading(`Cleaned up after ${transcript.elapsed()}.`);
      process.exit(exitCodeFor(signal));
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  transcript.heading(`k8s-ephemeral-access demo (${new Date().toISOString()})`);
  let failed: unknown;
  try {
    await runSteps(
      demoSteps(options),
      new DemoContext(options, transcript, cleanup),
      transcript,
      () => signalled !== undefined,
    );
  } catch (err) {
    failed = err;
  }
  // The signal handler owns the rest of the run (clean-up, exit code).
  if (signalled) return new Promise<number>(() => undefined);

  transcript.heading('Clean up');
  await cleanup.runAll();
  if (failed) {
    if (!(failed instanceof ReportedError)) transcript.heading(`demo failed: ${errorText(failed)}`);
    transcript.heading(`Demo FAILED after ${transcript.elapsed()}.`);
    return 1;
  }
  transcript.heading(`Demo finished in ${transcript.elapsed()}: ${Object.values(MARKERS).join(', ')}.`);
  if (options.keep) {
    const info = (await loadClusterScript()).clusterInfo();
    transcript.line('The local control plane is still running (--keep). To explore it:');
    transcript.line(`  export KUBECONFIG=${info.kubeconfig}`);
    transcript.line('  kubectl get namespaces');
    transcript.line(`  tail -f ${info.auditLog}`);
    transcript.line('Stop it with: npm run cluster:down');
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
