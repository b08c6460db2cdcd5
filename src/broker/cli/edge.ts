// `edge --config F`: the edge relay (src/broker/edge-relay/), the only process runners reach in edge mode,
// until a signal stops it. It relays TLS by server name and never terminates it.
import { errorMessage } from '../../shared/errors.js';
import { loadEdgeConfig } from '../edge-relay/edge-config.js';
import { runEdge } from '../edge-relay/run-edge.js';
import { createLogger } from '../logger.js';
import { requiredOption, type Command } from './command.js';
import { EXIT } from './exit-codes.js';

export const edge: Command = {
  name: 'edge',
  summary: 'run the edge relay that broker replicas dial out to (edge mode)',
  help: `usage: edge --config <edge-config.yaml>

Runs the edge relay with this configuration (docs/configuration.md, "The edge") until SIGTERM
or SIGINT. Runners connect to its public port; it reads only the TLS server name, and passes the
encrypted bytes through a tunnel that a broker replica opened outbound to it. It holds no
Kubernetes credential and no key for the runners' server names.

  -c, --config FILE  the edge configuration file

exit codes: 0 stopped by a signal, 1 failed to start, 2 usage error
`,
  options: { config: { type: 'string', short: 'c' } },
  positionals: { min: 0, max: 0 },
  async run(args, io) {
    const configPath = requiredOption(args, this, 'config');
    const logger = createLogger({ level: io.env.LOG_LEVEL === 'debug' ? 'debug' : 'info' });
    try {
      const running = await runEdge(loadEdgeConfig(configPath), logger);
      const onSignal = (signal: string) => {
        logger.info('signal received', { signal });
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      return undefined;
    } catch (err) {
      logger.error('edge failed to start', { error: errorMessage(err) });
      return EXIT.no;
    }
  },
};
