// The broker's entry point: `node build/broker/index.js <command>` after `npm run build:broker`
// (in the image: /app/index.js); `--config <file>` alone runs the broker, as `serve` does.
// Importing this file runs the command line (cli/run-cli.ts); the commands do the rest.
import { processIo } from './cli/cli-io.js';
import { runCli } from './cli/run-cli.js';

void runCli(process.argv.slice(2), processIo()).then((code) => {
  // serve resolves with undefined once listening; the process lives on until a signal. Otherwise
  // the command is done: a broker that failed to start, or a Kubernetes client's idle keep-alive
  // connection, must not hold the process open.
  if (code === undefined) return;
  process.exitCode = code;
  setTimeout(() => process.exit(code), 1_000).unref();
});
