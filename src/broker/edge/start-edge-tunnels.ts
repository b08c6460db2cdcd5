// The broker's hook for edge mode: one outbound tunnel per configured edge address, and every
// stream the edge opens on them handed to the broker's or the gateway's HTTPS server by its
// CONNECT authority. Runners then reach the broker only through the edge; the broker needs no
// listening port reachable from outside the cluster.
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { EDGE_CLIENT_HEADER, edgeTargetOf, type EdgeTarget } from '../../shared/edge-protocol.js';
import type { Logger } from '../logger.js';
import type { EdgeTunnelConfig } from '../config/edge-section.js';
import { startEdgeLink, type EdgeLink } from './edge-link.js';
import { handOver, parseEdgeClient, type HandoverTarget } from './stream-handover.js';

/** A listener a stream can reach: its server and the TLS files it serves. */
export interface EdgeListener {
  server: TlsServer;
  tls: { certFile: string; keyFile: string };
}

export interface RunningEdgeTunnels {
  /** Tunnels up now (0..addresses). */
  connected(): number;
  close(graceMs: number): Promise<void>;
}

export function startEdgeTunnels(
  config: EdgeTunnelConfig,
  listeners: Partial<Record<EdgeTarget, EdgeListener>>,
  logger: Logger,
): RunningEdgeTunnels {
  const targets = new Map<EdgeTarget, HandoverTarget>();
  for (const [name, l] of Object.entries(listeners) as [EdgeTarget, EdgeListener | undefined][])
    if (l)
      targets.set(name, {
        server: l.server,
        secureContext: createSecureContext({
          cert: readFileSync(l.tls.certFile),
          key: readFileSync(l.tls.keyFile),
        }),
      });
  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => stream.destroy());
    const target = headers[':method'] === 'CONNECT' ? edgeTargetOf(headers[':authority']) : undefined;
    const handover = target && targets.get(target);
    const client = parseEdgeClient(headers[EDGE_CLIENT_HEADER]);
    if (!handover || !client) {
      logger.warn('edge stream refused', { authority: headers[':authority'], method: headers[':method'] });
      stream.respond({ ':status': handover ? 400 : 404 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    handOver(stream, handover, client);
  };
  const tls = {
    ca: readFileSync(config.caFile),
    cert: readFileSync(config.clientTls.certFile),
    key: readFileSync(config.clientTls.keyFile),
  };
  const links: EdgeLink[] = config.addresses.map((a) =>
    startEdgeLink(
      { host: a.host, port: a.port, serverName: config.serverName, ...tls, backoff: config.backoff },
      onStream,
      logger,
    ),
  );
  return {
    connected: () => links.filter((l) => l.connected).length,
    async close(graceMs) {
      await Promise.all(links.map((l) => l.close(graceMs)));
    },
  };
}
