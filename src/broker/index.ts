// The broker's entry point: `node build/broker/index.js --config <file>` after `npm run build:broker`
// (in the image: /app/index.js).
// Importing this file parses the arguments and starts the broker; start-from-config.ts does the rest.
import { parseArgs } from 'node:util';
import { startBrokerFromConfigFile } from './start-from-config.js';
import { errorMessage } from '../shared/errors.js';

const USAGE = 'usage: node index.js --config <broker-config.yaml>\n';

function configPathFromArgs(argv: string[]): string | undefined {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' } },
      strict: true,
    });
    return values.config;
  } catch {
    return undefined;
  }
}

const configPath = configPathFromArgs(process.argv.slice(2));
if (!configPath) {
  process.stderr.write(USAGE);
  process.exitCode = 2;
} else {
  startBrokerFromConfigFile(configPath).catch((err: unknown) => {
    // Config errors explain themselves (file:line: field: problem); say nothing else secret-bearing.
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'broker failed to start', error: errorMessage(err) })}\n`,
    );
    process.exit(1);
  });
}
