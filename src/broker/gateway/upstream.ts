// Where the gateway sends what it accepts: the API server the broker itself uses (its kubeconfig's
// cluster URL and CA, never `clusterServer`), over keep-alive connections of its own. The broker's
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
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { Pool } from 'undici';
import { ConnectionGate } from './connection-gate.js';
import type { Lane } from './fairness.js';

/** An idle connection is kept this long, so a job's calls seconds apart reuse it (clients.ts). */
const UPSTREAM_IDLE_MS = 30_000;

export interface UpstreamLane {
  pool: Pool;
  /** Hands out the pool's connections; a call dispatches only once it holds one. */
  gate: ConnectionGate;
}

export interface Upstream {
  lanes: Record<Lane, UpstreamLane>;
  /** The server URL's path without trailing slashes, prefixed to every request path. */
  basePath: string;
  close(): void;
}

export function upstreamOf(
  kc: KubeConfig,
  connections: Record<Lane, number>,
  onQueue: (lane: Lane, queued: number) => void = () => undefined,
): Upstream {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new Error('the gateway needs a cluster server in the broker kubeconfig');
  const url = new URL(cluster.server);
  const ca = cluster.caData
    ? Buffer.from(cluster.caData, 'base64')
    : cluster.caFile
      ? readFileSync(cluster.caFile)
      : undefined;
  const poolOf = (size: number) =>
    new Pool(url.origin, {
      connections: size,
      pipelining: 1,
      keepAliveTimeout: UPSTREAM_IDLE_MS,
      // A watch may be silent for minutes, and how long an answer takes is the API server's to bound
      // (as it was with node:https, which has no such timeouts).
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(url.protocol === 'https:'
        ? {
            connect: {
              ca,
              rejectUnauthorized: !cluster.skipTLSVerify,
              ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
            },
          }
        : {}),
    });
  const laneOf = (lane: Lane): UpstreamLane => ({
    pool: poolOf(connections[lane]),
    gate: new ConnectionGate(connections[lane], (queued) => onQueue(lane, queued)),
  });
  const lanes = { short: laneOf('short'), long: laneOf('long') };
  return {
    lanes,
    basePath: url.pathname.replace(/\/+$/, ''),
    close: () => {
      for (const { pool } of Object.values(lanes)) void pool.destroy().catch(() => undefined);
    },
  };
}
