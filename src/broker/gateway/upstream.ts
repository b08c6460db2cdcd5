// Where the gateway sends what it accepts: the API server the broker itself uses (its kubeconfig's
// cluster URL and CA, never `clusterServer`), over keep-alive connections of its own. The broker's
// own credentials never travel: no Authorization of the broker and no client certificate (the
// API server would authenticate a client certificate before the bearer token, and the request
// would run as the broker). Each request carries the grant's token alone.
import { readFileSync } from 'node:fs';
import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/**
 * Connections to the API server: watches hold one each for their lifetime, so the bound is high;
 * past it requests wait for a free connection rather than open more.
 */
export const UPSTREAM_MAX_SOCKETS = 2_048;
const UPSTREAM_MAX_FREE_SOCKETS = 64;

export interface Upstream {
  url: URL;
  agent: HttpAgent;
  close(): void;
}

export function upstreamOf(kc: KubeConfig): Upstream {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new Error('the gateway needs a cluster server in the broker kubeconfig');
  const url = new URL(cluster.server);
  const keepAlive = {
    keepAlive: true,
    maxSockets: UPSTREAM_MAX_SOCKETS,
    maxFreeSockets: UPSTREAM_MAX_FREE_SOCKETS,
  };
  let agent: HttpAgent;
  if (url.protocol === 'https:') {
    const ca = cluster.caData
      ? Buffer.from(cluster.caData, 'base64')
      : cluster.caFile
        ? readFileSync(cluster.caFile)
        : undefined;
    agent = new HttpsAgent({
      ...keepAlive,
      ca,
      rejectUnauthorized: !cluster.skipTLSVerify,
      ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    });
  } else agent = new HttpAgent(keepAlive);
  return { url, agent, close: () => agent.destroy() };
}

/** What every forwarded request's options share, worked out once rather than per request. */
export interface UpstreamTarget {
  send: (options: RequestOptions) => ClientRequest;
  agent: HttpAgent;
  protocol: string;
  /** Without the brackets of an IPv6 literal. */
  hostname: string;
  port: string | undefined;
  /** The Host header. */
  host: string;
  /** The server URL's path without trailing slashes, prefixed to every request path. */
  basePath: string;
}

export function targetOf(upstream: Upstream): UpstreamTarget {
  const { url, agent } = upstream;
  return {
    send: url.protocol === 'https:' ? httpsRequest : httpRequest,
    agent,
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || undefined,
    host: url.host,
    basePath: url.pathname.replace(/\/+$/, ''),
  };
}
