// Running the edge: the tunnel listener the brokers dial, then the public listener the runners
// reach, and a stop that closes both. The edge holds only its own tunnel certificate and the
// brokers' pins: no Kubernetes credential, no key for the names the runners connect to.
import { readFileSync } from 'node:fs';
import type { Logger } from '../logger.js';
import type { EdgeConfig } from './edge-config.js';
import { startRelay } from './relay.js';
import { startTunnelPool } from './tunnel-pool.js';

export interface RunningEdge {
  /** Where runners connect (host:port). */
  address: string;
  /** Where brokers dial in (host:port). */
  tunnelAddress: string;
  tunnels(): number;
  close(): Promise<void>;
}

export async function runEdge(config: EdgeConfig, logger: Logger): Promise<RunningEdge> {
  const pool = await startTunnelPool(
    {
      listen: config.tunnel.listen,
      cert: readFileSync(config.tunnel.tls.certFile),
      key: readFileSync(config.tunnel.tls.keyFile),
      clientCa: readFileSync(config.tunnel.clientCaFile),
      clientKeySha256: config.tunnel.clientKeySha256,
    },
    logger.child({ component: 'tunnels' }),
  );
  const relay = await startRelay(
    { listen: config.listen, routes: config.routes, helloTimeoutMs: config.helloTimeoutMs },
    pool,
    logger.child({ component: 'relay' }),
  ).catch(async (err: unknown) => {
    await pool.close();
    throw err;
  });
  logger.info('edge listening', {
    address: relay.address,
    tunnelAddress: pool.address,
    serverNames: [...config.routes.keys()],
  });
  return {
    address: relay.address,
    tunnelAddress: pool.address,
    tunnels: () => pool.size,
    async close() {
      await relay.close();
      await pool.close();
    },
  };
}
