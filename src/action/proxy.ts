// Which forward proxy (if any) an https request goes through, by the conventions self-hosted runners
// are set up with: `https_proxy`/`HTTPS_PROXY` (lower case first, as curl and the toolkit read them)
// and `no_proxy`/`NO_PROXY`. Loopback hosts never go through a proxy, as the runner itself treats
// them. Matching is on the URL's text, never on a DNS answer, so it cannot change under the job.
import { BlockList, isIP } from 'node:net';
import type { Env } from './inputs.js';

export interface ProxyEndpoint {
  /** The proxy's host and port, for the CONNECT connection. */
  hostname: string;
  port: number;
  /** `Proxy-Authorization` when the proxy URL carries credentials. */
  authorization: string | undefined;
  /** For messages: scheme, host and port, never the credentials, and the variable it came from. */
  display: string;
}

export class ProxyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyConfigError';
  }
}

/** The proxy for an https URL, or undefined to connect directly. */
export function proxyFor(target: URL, env: Env): ProxyEndpoint | undefined {
  const variable = ['https_proxy', 'HTTPS_PROXY'].find((name) => env[name]);
  if (!variable) return undefined;
  const noProxy = env.no_proxy ?? env.NO_PROXY ?? '';
  if (isLoopback(target.hostname) || bypasses(target, noProxy)) return undefined;
  return parseProxyUrl(env[variable]!.trim(), variable);
}

/** For debug logs: "direct" or "via proxy <display>", or why the proxy setting is unusable. */
export function describeRoute(target: URL, env: Env): string {
  try {
    const proxy = target.protocol === 'https:' ? proxyFor(target, env) : undefined;
    return `${target.host} ${proxy ? `via proxy ${proxy.display}` : 'direct'}`;
  } catch (err) {
    return `${target.host}: ${(err as Error).message}`;
  }
}

function parseProxyUrl(raw: string, variable: string): ProxyEndpoint {
  let url: URL;
  try {
    // "proxy.corp:3128" without a scheme is common in runner set-ups and means http.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    // The value is not shown: it may carry a password.
    throw new ProxyConfigError(`${variable} is not a URL; use http://host:port`);
  }
  const display = `${url.protocol}//${url.host} (from ${variable})`;
  if (url.protocol !== 'http:')
    throw new ProxyConfigError(
      `proxy ${display} uses ${url.protocol}//; only http:// proxies are supported (the tunnel inside is TLS to the target)`,
    );
  const authorization =
    url.username || url.password
      ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
      : undefined;
  return {
    hostname: bare(url.hostname),
    port: url.port ? Number(url.port) : 80,
    authorization,
    display,
  };
}

/** "[::1]" -> "::1"; a trailing dot of a fully qualified name is dropped. */
const bare = (host: string): string => host.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');

function isLoopback(hostname: string): boolean {
  const host = bare(hostname).toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  return family === 6 && LOOPBACK_V6.check(host, 'ipv6');
}

const LOOPBACK_V6 = new BlockList();
LOOPBACK_V6.addAddress('::1', 'ipv6');
LOOPBACK_V6.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/**
 * Whether `no_proxy` exempts the target. Entries, comma-separated: `*` (everything); a host name,
 * which matches itself and its subdomains; `.example.com` or `*.example.com`, subdomains only; an
 * IP address; a CIDR range (for IP-literal targets); any of these with `:port` to match that port only.
 */
export function bypasses(target: URL, noProxy: string): boolean {
  const host = bare(target.hostname).toLowerCase();
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  const hostFamily = isIP(host);
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const { name, port: entryPort } = splitPort(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    const cidr = /^(.+)\/(\d{1,3})$/.exec(name);
    if (cidr) {
      const family = isIP(cidr[1]!);
      const prefix = Number(cidr[2]);
      if (family === 0 || family !== hostFamily || prefix > (family === 4 ? 32 : 128)) continue;
      const range = new BlockList();
      const type = family === 4 ? 'ipv4' : 'ipv6';
      range.addSubnet(cidr[1]!, prefix, type);
      if (range.check(host, type)) return true;
      continue;
    }
    if (isIP(name) !== 0) {
      if (hostFamily !== 0 && sameAddress(name, host)) return true;
      continue;
    }
    if (name.startsWith('*.') || name.startsWith('.')) {
      if (host.endsWith(name.slice(name.indexOf('.')))) return true;
      continue;
    }
    if (host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

function splitPort(entry: string): { name: string; port: number | undefined } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (v6) return { name: v6[1]!, port: v6[2] === undefined ? undefined : Number(v6[2]) };
  // A bare IPv6 address (or range) has colons of its own and no port.
  if ((entry.match(/:/g) ?? []).length > 1) return { name: entry, port: undefined };
  const m = /^(.*):(\d+)$/.exec(entry);
  return m ? { name: m[1]!, port: Number(m[2]) } : { name: entry, port: undefined };
}

function sameAddress(a: string, b: string): boolean {
  const family = isIP(a);
  if (family !== isIP(b)) return false;
  const list = new BlockList();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  list.addAddress(a, type);
  return list.check(b, type);
}
