// A query string read the way the API server (Go's net/url) reads it, so that what the gateway
// decides from a parameter (is this a watch? a follow?) is what the API server will do with it.
// Go differs from URLSearchParams: a pair holding ";" is dropped whole, a pair with a malformed
// escape is dropped whole, and percent escapes decode to bytes (no UTF-8 check).

/** The first value of `key` as Go's url.Values.Get reads it; undefined when absent. */
export function goQueryFirst(search: string, key: string): string | undefined {
  const query = search.startsWith('?') ? search.slice(1) : search;
  for (const pair of query.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const name = unescapeQuery(eq < 0 ? pair : pair.slice(0, eq));
    if (name !== key) continue;
    const value = unescapeQuery(eq < 0 ? '' : pair.slice(eq + 1));
    if (value !== undefined) return value;
  }
  return undefined;
}

/** url.QueryUnescape: "+" is a space, "%XX" a byte; undefined for a malformed escape. */
function unescapeQuery(text: string): string | undefined {
  if (!text.includes('%')) return text.replaceAll('+', ' ');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(c === 0x2b ? 0x20 : c);
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * A boolean query parameter as the API server converts it (apimachinery's
 * Convert_Slice_string_To_bool): absent is false, "0" and "false" in any case are false, and
 * anything else, the empty string included, is true. Non-ASCII look-alikes of "false" (a long s)
 * count as true here: the API server reads them either way depending on the other parameters, and
 * true is the side that keeps a stream under the long-running caps.
 */
export function goQueryBool(search: string, key: string): boolean {
  const value = goQueryFirst(search, key);
  if (value === undefined) return false;
  return !(value === '0' || value.toLowerCase() === 'false');
}
