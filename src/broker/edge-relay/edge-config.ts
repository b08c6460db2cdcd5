// The edge's own configuration file (docs/configuration.md, "The edge"): its public listener, the
// server names it routes and to which broker listener, and its tunnel listener with the pinned
// client keys of the brokers. It names no Kubernetes credential and no key for the runners' names.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { readOperatorFile } from '../yaml-fields/read-file.js';
import { FieldReader } from '../yaml-fields/fields.js';
import { parseYamlSource, type YamlPath } from '../yaml-fields/yaml-source.js';
import { EDGE_TARGETS, type EdgeTarget } from '../../shared/edge-protocol.js';

export interface EdgeConfig {
  listen: { host: string; port: number };
  /** Lower-case server name → the broker listener it reaches. */
  routes: ReadonlyMap<string, EdgeTarget>;
  helloTimeoutMs: number;
  tunnel: {
    listen: { host: string; port: number };
    tls: { certFile: string; keyFile: string };
    clientCaFile: string;
    clientKeySha256: readonly string[];
  };
}

export const EDGE_DEFAULTS = {
  listen: { host: '0.0.0.0', port: 8443 },
  tunnelListen: { host: '0.0.0.0', port: 8500 },
  helloTimeoutMs: 10_000,
} as const;

const HOST = /^[A-Za-z0-9.:-]+$/;
const SERVER_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const PIN = /^[A-Za-z0-9+/]{43}=$/;

export function loadEdgeConfig(path: string): EdgeConfig {
  const file = resolve(path);
  const text = readOperatorFile(path, 'config file', file).toString('utf8');
  return parseEdgeConfig(text, file);
}

export function parseEdgeConfig(text: string, fileName: string): EdgeConfig {
  const source = parseYamlSource(text, fileName);
  const r = new FieldReader(source);
  const baseDir = dirname(resolve(fileName));
  const doc =
    r.mapping([], source.value, { required: ['routes', 'tunnel'], optional: ['listen', 'helloTimeoutMs'] }) ??
    {};
  const filePath = (p: YamlPath, value: unknown): string => {
    const raw = r.string(p, value);
    if (raw === undefined) return '';
    const absolute = resolve(baseDir, raw);
    let ok: boolean;
    try {
      ok = statSync(absolute).isFile();
    } catch {
      ok = false;
    }
    return ok
      ? absolute
      : (r.report(
          p,
          `${JSON.stringify(raw)} is not a readable file (relative paths start from ${baseDir})`,
        ) ?? '');
  };
  const listenAt = (p: YamlPath, value: unknown, d: { host: string; port: number }) => {
    const l = value === undefined ? {} : (r.mapping(p, value, { optional: ['host', 'port'] }) ?? {});
    return {
      host:
        l.host === undefined
          ? d.host
          : (r.string([...p, 'host'], l.host, { pattern: HOST, hint: 'is not an IP address or host name' }) ??
            d.host),
      port: l.port === undefined ? d.port : (r.integer([...p, 'port'], l.port, 0, 65535) ?? d.port),
    };
  };
  const routes = readRoutes(r, doc.routes);
  const t =
    r.mapping(['tunnel'], doc.tunnel, {
      required: ['tls', 'clientCaFile'],
      optional: ['listen', 'clientKeySha256', 'clientKeySha256File'],
    }) ?? {};
  const tls =
    t.tls === undefined
      ? {}
      : (r.mapping(['tunnel', 'tls'], t.tls, { required: ['certFile', 'keyFile'] }) ?? {});
  const pins = readPins(r, t, filePath);
  const config: EdgeConfig = {
    listen: listenAt(['listen'], doc.listen, EDGE_DEFAULTS.listen),
    routes,
    helloTimeoutMs:
      doc.helloTimeoutMs === undefined
        ? EDGE_DEFAULTS.helloTimeoutMs
        : (r.integer(['helloTimeoutMs'], doc.helloTimeoutMs, 100, 60_000) ?? 0),
    tunnel: {
      listen: listenAt(['tunnel', 'listen'], t.listen, EDGE_DEFAULTS.tunnelListen),
      tls: {
        certFile: tls.certFile === undefined ? '' : filePath(['tunnel', 'tls', 'certFile'], tls.certFile),
        keyFile: tls.keyFile === undefined ? '' : filePath(['tunnel', 'tls', 'keyFile'], tls.keyFile),
      },
      clientCaFile: t.clientCaFile === undefined ? '' : filePath(['tunnel', 'clientCaFile'], t.clientCaFile),
      clientKeySha256: pins,
    },
  };
  if (config.listen.port !== 0 && config.listen.port === config.tunnel.listen.port)
    r.report(['tunnel', 'listen', 'port'], 'must differ from listen.port');
  r.finish();
  return config;
}

/** `routes`: each server name once, to one of the broker's listeners. */
function readRoutes(r: FieldReader, value: unknown): Map<string, EdgeTarget> {
  const routes = new Map<string, EdgeTarget>();
  r.list(
    ['routes'],
    value,
    (p, v) => {
      const route = r.mapping(p, v, { required: ['serverName', 'target'] });
      if (!route) return undefined;
      const name = r.string([...p, 'serverName'], route.serverName, {
        pattern: SERVER_NAME,
        hint: 'is not a lower-case DNS name',
      });
      const target = r.string([...p, 'target'], route.target, {
        pattern: new RegExp(`^(?:${EDGE_TARGETS.join('|')})$`),
        hint: `must be one of ${EDGE_TARGETS.join(', ')}`,
      }) as EdgeTarget | undefined;
      if (name && routes.has(name))
        return r.report([...p, 'serverName'], `${JSON.stringify(name)} is routed twice`);
      if (name && target) routes.set(name, target);
      return name;
    },
    { nonEmpty: true },
  );
  return routes;
}

const PIN_HINT = 'is not a base64 SHA-256 digest (44 characters; docs/configuration.md shows the command)';

/**
 * The pins: listed in the file (`tunnel.clientKeySha256`) or one per line of a file of their own
 * (`tunnel.clientKeySha256File`, e.g. mounted from a Secret beside the CA they belong to).
 */
function readPins(
  r: FieldReader,
  t: Record<string, unknown>,
  filePath: (p: YamlPath, value: unknown) => string,
): string[] {
  const inline = ['tunnel', 'clientKeySha256'];
  const fromFile = ['tunnel', 'clientKeySha256File'];
  if ((t.clientKeySha256 === undefined) === (t.clientKeySha256File === undefined)) {
    r.report(['tunnel'], 'needs exactly one of clientKeySha256 (a list) and clientKeySha256File');
    return [];
  }
  if (t.clientKeySha256 !== undefined)
    return (
      r.list(inline, t.clientKeySha256, (p, v) => r.string(p, v, { pattern: PIN, hint: PIN_HINT }), {
        nonEmpty: true,
        unique: true,
      }) ?? []
    );
  const file = filePath(fromFile, t.clientKeySha256File);
  if (!file) return [];
  const pins: string[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      if (!PIN.test(line)) r.report(fromFile, `line ${i + 1} of ${file} ${PIN_HINT}`);
      else if (pins.includes(line)) r.report(fromFile, `line ${i + 1} of ${file} repeats a pin`);
      else pins.push(line);
    });
  if (pins.length === 0) r.report(fromFile, `${file} lists no pin (one base64 SHA-256 digest per line)`);
  return pins;
}
