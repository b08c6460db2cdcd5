// What the edge relay and the broker's tunnel agree on. The broker dials the edge (mutual TLS,
// ALPN h2); on that one connection the edge is the HTTP/2 client and opens one CONNECT stream per
// runner connection, the broker is the HTTP/2 server and hands each stream to its own HTTPS
// listener, so the runners' TLS ends at the broker and the edge relays only ciphertext.

/** The ALPN protocol of the tunnel: plain HTTP/2, the roles reversed. */
export const EDGE_TUNNEL_ALPN = 'h2';

/** The broker listeners a stream may reach: the CONNECT stream's :authority names one. */
export const EDGE_TARGETS = ['broker', 'gateway'] as const;
export type EdgeTarget = (typeof EDGE_TARGETS)[number];

/** The CONNECT authority of a target (HTTP/2 wants host:port; the port says nothing here). */
export const edgeAuthority = (target: EdgeTarget): string => `${target}:443`;

/** The target of a CONNECT authority, or undefined for anything else. */
export function edgeTargetOf(authority: string | undefined): EdgeTarget | undefined {
  return EDGE_TARGETS.find((t) => edgeAuthority(t) === authority);
}

/**
 * The runner's address and port as the edge saw them (`203.0.113.9:41000`, `[2001:db8::1]:41000`),
 * so the broker's sourceRanges and audit lines name the real client. The broker trusts it because
 * only an edge it dialled and authenticated (its pinned CA) can open streams.
 */
export const EDGE_CLIENT_HEADER = 'k8s-ea-edge-client';

/** The HTTP/2 stream window: runners' manifests and watch answers pass in few round trips. */
export const EDGE_STREAM_WINDOW_BYTES = 1 << 20;
