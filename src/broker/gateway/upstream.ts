// Where the gateway sends what it accepts: the API server the broker itself uses (its kubeconfig's
// cluster URL and CA, never `clusterServer`), over keep-alive connections of its own. The broker's
// own credentials never travel: no Authorization of the broker and no client certificate (the
// API server would authenticate a client certificate before the bearer token, and the request
// would run as the broker). Each request carries the grant's token alone.
//
// The connections are an undici Pool, not node:https: per forwarded request it runs a fraction of
// the JavaScript of an http.ClientRequest and its Agent (docs/benchmarks.md, the gateway findings).
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { Pool } from 'undici';

/**
 * Connections to the API server: watches hold one each for their lifetime, so the bound is high;
 * past it requests wait for a free connection rather than open more.
 */
export const UPSTREAM_MAX_SOCKETS = 2_048;
/** An idle connection is kept this long, so a job's calls seconds apart reuse it (clients.ts). */
const UPSTREAM_IDLE_MS = 30_000;

export interface Upstream {
  pool: Pool;
  /** The server URL's path without trailing slashes, prefixed to every request path. */
  basePath: string;
  close(): void;
}

export function upstreamOf(kc: KubeConfig): Upstream {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new Error('the gateway needs a cluster server in the broker kubeconfig');
  const url = new URL(cluster.server);
  const ca = cluster.caData
    ? Buffer.from(cluster.caData, 'base64')
    : cluster.caFile
      ? readFileSync(cluster.caFile)
      : undefined;
  const pool = new Pool(url.origin, {
    connections: UPSTREAM_MAX_SOCKETS,
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
  return {
    pool,
    basePath: url.pathname.replace(/\/+$/, ''),
    close: () => void pool.destroy().catch(() => undefined),
  };
}
