// Fetches a small JSON document (OIDC discovery, JWKS) with a timeout, a size bound and no
// redirects, and refuses URLs that are not https (loopback http excepted, for the test issuer).
import { isTrustedFetchUrl } from './issuer-url.js';

/** Discovery documents and JWKS are a few KiB; anything far larger is not what we asked for. */
const MAX_BODY_BYTES = 256 * 1024;

export async function fetchJson(url: string, fetchImpl: typeof fetch, timeoutMs: number): Promise<unknown> {
  const parsed = new URL(url);
  if (!isTrustedFetchUrl(parsed)) throw new Error(`refusing to fetch ${parsed.origin}: not https`);
  const response = await fetchImpl(parsed, {
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`GET ${parsed.origin}${parsed.pathname} answered ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) {
    await response.body?.cancel();
    throw new Error(`GET ${parsed.origin}${parsed.pathname}: body too large`);
  }
  const text = await response.text();
  if (text.length > MAX_BODY_BYTES) throw new Error(`GET ${parsed.origin}${parsed.pathname}: body too large`);
  return JSON.parse(text) as unknown;
}
