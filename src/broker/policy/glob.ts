// Segment-aware globs for policy values such as refs and workflow paths. Deliberately small:
//   *   any run of characters inside one segment (never crosses "/")
//   **  one or more whole segments (only as a complete segment, e.g. refs/heads/release/**)
// Everything else is literal; ? [ ] { } and backslash are refused when the policy is loaded, so
// nobody writes a pattern that means something else than they think. Matching is anchored and
// runs in O(pattern × value) without regular expressions (no catastrophic backtracking).

export const SEGMENT_WILDCARD = '*';
export const MULTI_SEGMENT_WILDCARD = '**';

/** Returns why a glob pattern is not allowed, or undefined when it is fine. */
export function globPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'is empty';
  const reserved = pattern.match(/[?[\]{}\\]/);
  if (reserved) return `uses "${reserved[0]}", which globs here do not support (only * and ** are special)`;
  for (const segment of pattern.split('/')) {
    if (segment === '') return 'has an empty segment (a leading, trailing or doubled "/")';
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`;
    if (segment.includes('**') && segment !== MULTI_SEGMENT_WILDCARD)
      return '"**" must be a whole segment, as in refs/heads/release/**';
  }
  return undefined;
}

export function hasWildcard(pattern: string): boolean {
  return pattern.includes(SEGMENT_WILDCARD);
}

/**
 * Whether `value` matches `pattern` (assumed valid per globPatternProblem). A value with an empty,
 * "." or ".." segment never matches: such paths are tricks (refs/heads/main/../x), not names.
 */
export function matchGlob(pattern: string, value: string): boolean {
  const pat = pattern.split('/');
  const val = value.split('/');
  if (val.some((part) => part === '' || part === '.' || part === '..')) return false;
  // memo[i][j]: does pat[i..] match val[j..]? Filled lazily from the end.
  const memo = new Map<number, boolean>();
  const width = val.length + 1;

  const match = (i: number, j: number): boolean => {
    const key = i * width + j;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    let result: boolean;
    const segment = pat[i];
    if (segment === undefined) result = j === val.length;
    else if (segment === MULTI_SEGMENT_WILDCARD) {
      // One or more whole segments: consume val[j], then either stop here or keep consuming.
      result = j < val.length && (match(i + 1, j + 1) || match(i, j + 1));
    } else {
      const part = val[j];
      result = part !== undefined && matchSegment(segment, part) && match(i + 1, j + 1);
    }
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}

/** `*` within one segment: the classic greedy wildcard match with backtracking to the last star. */
function matchSegment(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== SEGMENT_WILDCARD && pattern[p] === text[t]) {
      p += 1;
      t += 1;
    } else if (p < pattern.length && pattern[p] === SEGMENT_WILDCARD) {
      star = p;
      mark = t;
      p += 1;
    } else if (star !== -1) {
      p = star + 1;
      mark += 1;
      t = mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === SEGMENT_WILDCARD) p += 1;
  return p === pattern.length;
}
