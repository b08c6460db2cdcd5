// Parses a YAML file and remembers where every key and value sits, so validation errors can name
// the exact line. js-yaml builds the values; its event stream (parseEvents) gives the offsets,
// which we walk once to map each field path to a line.
import { EVENT_ID, getScalarValue, load, parseEvents, YAMLException, type Event } from 'js-yaml';
import { ConfigError, type ConfigIssue } from './config-error.js';

export type YamlPath = readonly (string | number)[];

/** `rules[0].match.ref` style, as the error messages show a field. */
export function formatPath(path: YamlPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out;
}

export interface YamlSource {
  fileName: string;
  /** The parsed document (plain objects, arrays and scalars). */
  value: unknown;
  /**
   * Line (1-based) of the field: the line of its key inside a mapping, else the line of the value.
   * Falls back to the closest ancestor that has a position (e.g. inside an alias).
   */
  lineOf(path: YamlPath): number | undefined;
}

/** Nesting deeper than this is never needed for config or policy and only costs parse time. */
const MAX_DEPTH = 32;

export function parseYamlSource(text: string, fileName: string): YamlSource {
  let value: unknown;
  let events: Event[];
  try {
    // One document only; aliases are allowed (they share objects, there is no expansion).
    value = load(text, { filename: fileName, maxDepth: MAX_DEPTH });
    events = parseEvents(text, { filename: fileName, maxDepth: MAX_DEPTH });
  } catch (err) {
    throw new ConfigError([yamlIssue(err, fileName)]);
  }
  const lines = indexLines(text, events);
  return {
    fileName,
    value,
    lineOf(path) {
      for (let n = path.length; n >= 0; n -= 1) {
        const line = lines.get(pathKey(path.slice(0, n)));
        if (line !== undefined) return line;
      }
      return undefined;
    },
  };
}

function yamlIssue(err: unknown, file: string): ConfigIssue {
  if (err instanceof YAMLException) {
    return {
      file,
      line: err.mark ? err.mark.line + 1 : undefined,
      field: '',
      message: `not valid YAML: ${err.reason}`,
    };
  }
  return { file, line: undefined, field: '', message: `not valid YAML: ${String(err)}` };
}

function pathKey(path: YamlPath): string {
  return JSON.stringify(path);
}

interface Frame {
  kind: 'mapping' | 'sequence';
  path: (string | number)[];
  /** Items seen so far: in a mapping, even counts are keys and odd counts are values. */
  count: number;
  /** The key whose value comes next (mappings only). */
  key: string | undefined;
}

/** Walks the parser events and records, per field path, the line of its key (or of its value). */
function indexLines(text: string, events: readonly Event[]): Map<string, number> {
  const newlines: number[] = [];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) newlines.push(i);
  const lineAt = (offset: number): number => {
    // Number of newlines before the offset, by binary search, plus one.
    let lo = 0;
    let hi = newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((newlines[mid] ?? Infinity) < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };

  const lines = new Map<string, number>();
  const stack: Frame[] = [];

  /** Where a new node goes, or undefined when it is a mapping key (handled separately). */
  const placeNode = (offset: number): (string | number)[] | undefined => {
    const parent = stack[stack.length - 1];
    if (!parent) {
      if (!lines.has(pathKey([]))) lines.set(pathKey([]), lineAt(offset));
      return [];
    }
    if (parent.kind === 'sequence') {
      const path = [...parent.path, parent.count];
      parent.count += 1;
      lines.set(pathKey(path), lineAt(offset));
      return path;
    }
    const isKey = parent.count % 2 === 0;
    parent.count += 1;
    if (isKey) return undefined;
    const path = [...parent.path, parent.key ?? '?'];
    const k = pathKey(path);
    if (!lines.has(k)) lines.set(k, lineAt(offset));
    return path;
  };

  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE: {
        const kind = event.type === EVENT_ID.MAPPING ? 'mapping' : 'sequence';
        const path = placeNode(event.start);
        // A collection used as a mapping key is not something our files support; keep walking.
        stack.push({
          kind,
          path: path ?? [...(stack[stack.length - 1]?.path ?? []), '?'],
          count: 0,
          key: undefined,
        });
        break;
      }
      case EVENT_ID.SCALAR: {
        const parent = stack[stack.length - 1];
        if (parent?.kind === 'mapping' && parent.count % 2 === 0) {
          parent.count += 1;
          parent.key = getScalarValue(text, event);
          lines.set(pathKey([...parent.path, parent.key]), lineAt(event.valueStart));
        } else {
          placeNode(event.valueStart);
        }
        break;
      }
      case EVENT_ID.ALIAS: {
        const parent = stack[stack.length - 1];
        if (parent?.kind === 'mapping' && parent.count % 2 === 0) {
          parent.count += 1;
          parent.key = '*';
        } else {
          placeNode(event.anchorStart);
        }
        break;
      }
      case EVENT_ID.POP:
        stack.pop();
        break;
      default:
        break;
    }
  }
  return lines;
}
