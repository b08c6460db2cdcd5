// A list of CIDR ranges in a config or policy file (trustedProxies, sourceRanges), each checked by
// net/cidr.ts and kept in its canonical form, so that duplicates spelled differently are caught.
import { formatCidr, parseCidr } from '../net/cidr.js';
import type { FieldReader } from './fields.js';
import type { YamlPath } from './yaml-source.js';

export function readCidrList(
  r: FieldReader,
  path: YamlPath,
  value: unknown,
  options: { emptyProblem?: string } = {},
): string[] | undefined {
  if (options.emptyProblem && Array.isArray(value) && value.length === 0)
    return r.report(path, options.emptyProblem);
  return r.list(
    path,
    value,
    (itemPath, item) => {
      const text = r.string(itemPath, item);
      if (text === undefined) return undefined;
      const parsed = parseCidr(text);
      if ('problem' in parsed) return r.report(itemPath, `${JSON.stringify(text)} ${parsed.problem}`);
      return formatCidr(parsed.cidr);
    },
    { unique: true },
  );
}
