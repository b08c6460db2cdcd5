// Small typed readers for validating YAML documents field by field. Each reader reports a problem
// (with the field's line) and returns undefined instead of throwing, so one run collects every
// problem of the file; `finish()` then throws them together as one ConfigError.
import { ConfigError, type ConfigIssue } from './config-error.js';
import { formatPath, type YamlPath, type YamlSource } from './yaml-source.js';

export type Mapping = Record<string, unknown>;

export class FieldReader {
  private readonly issues: ConfigIssue[] = [];

  constructor(readonly source: YamlSource) {}

  /** Records a problem at `path`; `message` should say what is wrong and how to fix it. */
  report(path: YamlPath, message: string): undefined {
    this.issues.push({
      file: this.source.fileName,
      line: this.source.lineOf(path),
      field: formatPath(path),
      message,
    });
    return undefined;
  }

  get ok(): boolean {
    return this.issues.length === 0;
  }

  /** Throws every recorded problem at once. */
  finish(): void {
    if (this.issues.length > 0) throw new ConfigError(this.issues);
  }

  /**
   * A mapping with only the allowed keys. Unknown keys are errors (a misspelt key must never be
   * silently ignored: in a policy that would drop a condition). Missing required keys too.
   */
  mapping(
    path: YamlPath,
    value: unknown,
    keys: { required?: readonly string[]; optional?: readonly string[] },
  ): Mapping | undefined {
    if (!isMapping(value))
      return this.report(path, `must be a mapping (key: value pairs), got ${describe(value)}`);
    const required = keys.required ?? [];
    const allowed = [...required, ...(keys.optional ?? [])];
    let good = true;
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        const hint = closest(key, allowed);
        this.report(
          [...path, key],
          `unknown field${hint ? `; did you mean "${hint}"?` : ''} (allowed: ${allowed.join(', ')})`,
        );
        good = false;
      }
    }
    // A misspelt key also shows up as a missing one; report the misspelling only.
    for (const key of good ? required : []) {
      if (!Object.hasOwn(value, key)) {
        this.report(path, `missing required field "${key}"`);
        good = false;
      }
    }
    return good ? value : undefined;
  }

  string(
    path: YamlPath,
    value: unknown,
    check?: { pattern: RegExp; hint: string; maxLength?: number },
  ): string | undefined {
    if (typeof value !== 'string') return this.report(path, `must be a string, got ${describe(value)}`);
    if (value.length === 0) return this.report(path, 'must not be empty');
    if (check) {
      const tooLong = check.maxLength !== undefined && value.length > check.maxLength;
      if (tooLong || !check.pattern.test(value))
        return this.report(path, `${JSON.stringify(value)} ${check.hint}`);
    }
    return value;
  }

  integer(path: YamlPath, value: unknown, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value))
      return this.report(path, `must be a whole number between ${min} and ${max}, got ${describe(value)}`);
    if (value < min || value > max)
      return this.report(path, `must be between ${min} and ${max}, got ${value}`);
    return value;
  }

  boolean(path: YamlPath, value: unknown): boolean | undefined {
    if (typeof value !== 'boolean') return this.report(path, `must be true or false, got ${describe(value)}`);
    return value;
  }

  /** A list whose items are read by `item`; a single item is not promoted to a list. */
  list<T>(
    path: YamlPath,
    value: unknown,
    item: (itemPath: YamlPath, itemValue: unknown) => T | undefined,
    options: { nonEmpty?: boolean; unique?: boolean } = {},
  ): T[] | undefined {
    if (!Array.isArray(value)) return this.report(path, `must be a list, got ${describe(value)}`);
    if (options.nonEmpty && value.length === 0) return this.report(path, 'must list at least one entry');
    const out: T[] = [];
    let good = true;
    value.forEach((v, i) => {
      const read = item([...path, i], v);
      if (read === undefined) good = false;
      else if (options.unique && out.includes(read)) {
        this.report([...path, i], `${JSON.stringify(read)} is listed twice; remove the duplicate`);
        good = false;
      } else out.push(read);
    });
    return good ? out : undefined;
  }
}

export function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A short description of a value's type for messages (never the value itself: it may be long). */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return `the boolean ${value}`;
  return `a ${typeof value}`;
}

/** The allowed key nearest to a misspelt one, if it is close enough to be a typo. */
function closest(key: string, allowed: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  // A truncated key ("leeway" for "leewaySeconds") is a typo too.
  const extended = allowed.filter((a) => lower.length >= 3 && a.toLowerCase().startsWith(lower));
  if (extended.length === 1) return extended[0];
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(
        Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
