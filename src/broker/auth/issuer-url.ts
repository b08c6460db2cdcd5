// Which OIDC issuers the broker may trust, and the one rule for their URLs: https, except on a
// loopback host (the local test issuer). The issuer string is compared exactly with the token's
// `iss`, so it must be written exactly as GitHub sends it (no trailing slash).

/** github.com's issuer. GHEC enterprise slug: `${GITHUB_ISSUER}/<slug>`; GHES: `https://<host>/_services/token`. */
export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

export interface IssuerConfig {
  /** Exact `iss` value; discovery is fetched from `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Whether a URL the broker fetches keys from is acceptable: https, or http on loopback only. */
export function isTrustedFetchUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

/** Returns why `issuer` is unusable, or undefined when it is fine. */
export function issuerUrlProblem(issuer: string): string | undefined {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return 'is not a URL; write it like https://token.actions.githubusercontent.com';
  }
  if (!isTrustedFetchUrl(url))
    return 'must use https:// (http:// is accepted only for a loopback test issuer such as http://127.0.0.1:PORT)';
  if (url.username || url.password) return 'must not contain credentials';
  if (url.search || url.hash || issuer.includes('?') || issuer.includes('#'))
    return 'must not have a query string or fragment';
  if (issuer.endsWith('/')) return 'must not end with "/" (the token\'s iss claim is compared exactly)';
  return undefined;
}
