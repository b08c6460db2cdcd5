// JSON.parse keeps the last of two equal keys, so {"namespace":"a",...,"namespace":"b"} is served
// as "b" while a proxy, a WAF or a person reading the body may see "a". Bodies with a repeated key
// are refused instead. This runs on text JSON.parse has already accepted (and the size limit has
// bounded), so it only has to follow strings and nesting; keys are compared decoded, so "a" and
// "\u0061" are the same key.

/** The first key that appears twice in one object of `json` (valid JSON), or undefined. */
export function findDuplicateKey(json: string): string | undefined {
  // One entry per open object or array: the keys seen so far, or null for an array.
  const open: (Set<string> | null)[] = [];
  let expectingKey = false;
  for (let i = 0; i < json.length; i += 1) {
    const c = json[i];
    if (c === '{') {
      open.push(new Set());
      expectingKey = true;
    } else if (c === '[') {
      open.push(null);
    } else if (c === '}' || c === ']') {
      open.pop();
      expectingKey = false;
    } else if (c === ',') {
      expectingKey = open.at(-1) instanceof Set;
    } else if (c === '"') {
      let end = i + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const keys = open.at(-1);
      if (expectingKey && keys) {
        const key = JSON.parse(json.slice(i, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectingKey = false;
      }
      i = end;
    }
  }
  return undefined;
}
