// `serve --config F`: the broker itself (start-from-config.ts), until a signal stops it.
import { errorMessage } from '../../shared/errors.js';
import { startBrokerFromConfigFile } from '../start-from-config.js';
import { requiredOption, type Command } from './command.js';
import { EXIT } from './exit-codes.js';

export const serve: Command = {
  name: 'serve',
  summary: 'run the broker (also: --config F without a command)',
  help: `usage: serve --config <broker-config.yaml>
       --config <broker-config.yaml>

Runs the broker with this configuration (docs/configuration.md) until SIGTERM or SIGINT. The
policy file it names is watched: a changed policy is validated and vetted completely, then
takes over; a bad one is refused and the running policy stays.

  -c, --config FILE  the broker configuration file

exit codes: 0 stopped by a signal, 1 failed to start or to stop, 2 usage error
`,
  options: { config: { type: 'string', short: 'c' } },
  positionals: { min: 0, max: 0 },
  async run(args, io) {
    const configPath = requiredOption(args, this, 'config');
    try {
      await startBrokerFromConfigFile(configPath, io.env);
      return undefined;
    } catch (err) {
      // Config errors explain themselves (file:line: field: problem); say nothing else secret-bearing.
      io.err(
        `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'broker failed to start', error: errorMessage(err) })}\n`,
      );
      return EXIT.no;
    }
  },
};
