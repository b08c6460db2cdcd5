// The broker config's `edge:` section: where the edges' tunnel listeners are, the CA pinned for
// their certificate, the broker's client certificate, and the redial backoff (used by edge/); and
// the checks of `publicListeners: false`, which only edge mode allows.
// load-config.ts calls this with its reader and its file-path check, so the problems land in the
// same report.
import type { FieldReader, Mapping } from '../yaml-fields/fields.js';
import type { YamlPath } from '../yaml-fields/yaml-source.js';

/** The broker config's `edge:` section (docs/configuration.md). */
export interface EdgeTunnelConfig {
  /** Each edge's tunnel address; a replica keeps one tunnel to each. */
  addresses: readonly { host: string; port: number }[];
  /** The name in the edges' tunnel certificate, when it is not the address's host. */
  serverName?: string;
  /** PEM CA of the edges' tunnel certificate (pinned: the system roots are not used). */
  caFile: string;
  /** The broker's client certificate for the tunnel, whose public key the edge pins. */
  clientTls: { certFile: string; keyFile: string };
  /** The redial backoff: the first wait and the ceiling (edge/backoff.ts). */
  backoff: { initialMs: number; maxMs: number };
}

export const EDGE_BACKOFF_DEFAULTS = { initialMs: 250, maxMs: 10_000 } as const;

const ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/;
const DNS_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

export function readEdgeSection(
  r: FieldReader,
  value: unknown,
  filePath: (path: YamlPath, value: unknown) => string | undefined,
): EdgeTunnelConfig | undefined {
  const e = r.mapping(['edge'], value, {
    required: ['addresses', 'caFile', 'clientTls'],
    optional: ['serverName', 'backoff'],
  });
  if (!e) return undefined;
  const addresses = r.list(
    ['edge', 'addresses'],
    e.addresses,
    (path, v) => {
      const text = r.string(path, v);
      const m = text === undefined ? null : ADDRESS.exec(text);
      if (text !== undefined && (!m || Number(m[3]) < 1 || Number(m[3]) > 65535))
        return r.report(
          path,
          `${JSON.stringify(text)} must be host:port of an edge's tunnel listener, e.g. edge.example.com:8500`,
        );
      return text;
    },
    { nonEmpty: true, unique: true },
  );
  const serverName =
    e.serverName === undefined
      ? undefined
      : r.string(['edge', 'serverName'], e.serverName, {
          pattern: DNS_NAME,
          hint: 'is not a DNS name',
          maxLength: 253,
        });
  const caFile = filePath(['edge', 'caFile'], e.caFile);
  const t = r.mapping(['edge', 'clientTls'], e.clientTls, { required: ['certFile', 'keyFile'] });
  const certFile = t && filePath(['edge', 'clientTls', 'certFile'], t.certFile);
  const keyFile = t && filePath(['edge', 'clientTls', 'keyFile'], t.keyFile);
  const b =
    e.backoff === undefined
      ? {}
      : (r.mapping(['edge', 'backoff'], e.backoff, { optional: ['initialMs', 'maxMs'] }) ?? {});
  const ms = (key: 'initialMs' | 'maxMs', min: number, max: number) =>
    b[key] === undefined
      ? EDGE_BACKOFF_DEFAULTS[key]
      : (r.integer(['edge', 'backoff', key], b[key], min, max) ?? 0);
  const backoff = { initialMs: ms('initialMs', 10, 60_000), maxMs: ms('maxMs', 100, 300_000) };
  if (backoff.initialMs > backoff.maxMs) r.report(['edge', 'backoff', 'initialMs'], 'must not exceed maxMs');
  if (!addresses || !caFile || !certFile || !keyFile) return undefined;
  return {
    addresses: addresses.map((a) => {
      const m = ADDRESS.exec(a)!;
      return { host: m[1] ?? m[2]!, port: Number(m[3]) };
    }),
    ...(serverName && { serverName }),
    caFile,
    clientTls: { certFile, keyFile },
    backoff,
  };
}

/**
 * `publicListeners: false` (edge-only mode): the broker binds no port for runners, so only an edge
 * can bring them; a listen address it would not use is refused rather than silently ignored.
 */
export function checkPublicListeners(r: FieldReader, doc: Mapping, publicListeners: boolean): void {
  if (publicListeners) return;
  const unused =
    'is not used with publicListeners: false (no public port is bound; runners come through the edge): remove it';
  if (doc.edge === undefined)
    r.report(
      ['publicListeners'],
      'can be false only in edge mode: add an edge: section (docs/edge.md), or runners have no way to the broker',
    );
  if (doc.listen !== undefined) r.report(['listen'], unused);
  const gateway = doc.gateway;
  if (typeof gateway === 'object' && gateway !== null && 'listen' in gateway)
    r.report(['gateway', 'listen'], unused);
}
