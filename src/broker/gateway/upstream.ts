// Where the gateway sends what it accepts: the API server the broker itself uses (its kubeconfig's
// cluster URL and CA, never `clusterServer`, as the broker's connection reads them, rotation
// included), over keep-alive connections of its own. The broker's
// own credentials never travel: no Authorization of the broker and no client certificate (the
// API server would authenticate a client certificate before the bearer token, and the request
// would run as the broker). Each request carries the grant's token alone.
//
// The connections are undici Pools, not node:https: per forwarded request they run a fraction of
// the JavaScript of an http.ClientRequest and its Agent (docs/benchmarks.md, the gateway findings).
//
// Two lanes, each a pool behind a gate of as many connections (connection-gate.ts): long-running
// calls (watches, log streams) hold a connection for their lifetime, so they have their own, and a
// short call never waits behind them; in either lane a call waits a bounded time for a connection.
import { Pool } from 'undici';
import { K8S_IDLE_CONNECTION_MS, type KubeConnection, type ServerTls } from '../kube/connection.js';
import { PerIdentity } from '../kube/tls-identity.js';
import { ConnectionGate } from './connection-gate.js';
import type { Lane } from './fairness.js';

export interface UpstreamLane {
  /** The lane's pool for the API server's current CA (connection.ts's serverTls()). */
  readonly pool: Pool;
  /** Hands out the pool's connections; a call dispatches only once it holds one. */
  gate: ConnectionGate;
}

export interface Upstream {
  lanes: Record<Lane, UpstreamLane>;
  /** The server URL's path without trailing slashes, prefixed to every request path. */
  readonly basePath: string;
  close(): void;
}

function poolOf(server: ServerTls, size: number): Pool {
  return new Pool(server.origin, {
    connections: size,
    pipelining: 1,
    // An idle connection is kept as long as the broker's own (connection.ts).
    keepAliveTimeout: K8S_IDLE_CONNECTION_MS,
    // A watch may be silent for minutes, and how long an answer takes is the API server's to bound
    // (as it was with node:https, which has no such timeouts).
    headersTimeout: 0,
    bodyTimeout: 0,
    ...(server.tls ? { connect: server.tls } : {}),
  });
}

/**
 * The gateway's lanes to the API server of `connection`. A rotated CA (the file changes) gives each
 * lane a new pool from the next call on; the old pool closes once its calls (a watch included) end.
 */
export function upstreamOf(
  connection: Pick<KubeConnection, 'serverTls'>,
  connections: Record<Lane, number>,
  onQueue: (lane: Lane, queued: number) => void = () => undefined,
): Upstream {
  connection.serverTls(); // no cluster server: fail at start, not on the first call
  const pools = { short: new PerIdentity<Pool>(), long: new PerIdentity<Pool>() };
  const laneOf = (lane: Lane): UpstreamLane => ({
    get pool() {
      const server = connection.serverTls();
      return pools[lane].get(server.key, () => poolOf(server, connections[lane]));
    },
    gate: new ConnectionGate(connections[lane], (queued) => onQueue(lane, queued)),
  });
  return {
    lanes: { short: laneOf('short'), long: laneOf('long') },
    get basePath() {
      return connection.serverTls().basePath;
    },
    close: () => {
      for (const lane of Object.values(pools)) lane.destroy();
    },
  };
}
