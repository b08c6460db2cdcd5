// The production start: config file → policy → verifier → runtime, and SIGTERM/SIGINT for a
// graceful stop. The entry file (index.ts) only parses arguments and calls this.
import { hostname } from 'node:os';
import { errorMessage } from '../shared/errors.js';
import { createLogger } from './logger.js';
import { createAuditLog } from './audit.js';
import { loadConfig } from './config/load-config.js';
import { loadPolicyVersion } from './policy/index.js';
import { createTokenVerifier } from './auth/token-verifier.js';
import { runBroker, type RunningBroker } from './runtime.js';

/** Resolves once listening; the process then lives on until a signal stops it. */
export async function startBrokerFromConfigFile(
  configPath: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningBroker> {
  const logger = createLogger({ level: env.LOG_LEVEL === 'debug' ? 'debug' : 'info' });
  const config = loadConfig(configPath);
  const policyContext = {
    issuers: config.issuers.map((i) => i.issuer),
    brokerNamespace: config.brokerNamespace,
  };
  const { policy, sha256 } = loadPolicyVersion(config.policyFile, policyContext);
  const verifier = createTokenVerifier({
    issuers: config.issuers,
    audience: config.audience,
    leewaySeconds: config.leewaySeconds,
  });
  const running = await runBroker(config, {
    verifier,
    policy,
    logger,
    audit: createAuditLog(),
    identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
    policyFile: { path: config.policyFile, context: policyContext, sha256 },
  });
  const onSignal = (signal: string) => {
    logger.info('signal received', { signal });
    void running.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('shutdown failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return running;
}
