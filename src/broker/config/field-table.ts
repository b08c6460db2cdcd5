// The config file's fields as rows of a table: each row says the field's type, its default, its
// bounds and the hint a wrong value gets, and one reader walks a table. A field's whole rule is
// on one line; the checks across fields stay in load-config.ts.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FieldReader, Mapping } from '../yaml-fields/fields.js';
import type { YamlPath } from '../yaml-fields/yaml-source.js';

type IntegerField = { type: 'integer'; min: number; max: number; default: number };
type NameField = { type: 'name'; pattern: RegExp; hint: string; default: string };
type BooleanField = { type: 'boolean'; default: boolean };
/** A path resolved against the config's directory; the file must exist. Absent: undefined. */
type FileField = { type: 'file'; whereFrom?: string };
type StringField = { type: 'string' };
export type Field = IntegerField | NameField | BooleanField | FileField | StringField;

export type FieldTable = Readonly<Record<string, Field>>;

type ValueOf<F extends Field> = F extends { type: 'integer' }
  ? number
  : F extends { type: 'name' }
    ? string
    : F extends { type: 'boolean' }
      ? boolean
      : string | undefined;

export type FieldValues<T extends FieldTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

export const integer = (min: number, max: number, fallback: number): IntegerField => ({
  type: 'integer',
  min,
  max,
  default: fallback,
});
export const name = (pattern: RegExp, hint: string, fallback: string): NameField => ({
  type: 'name',
  pattern,
  hint,
  default: fallback,
});
export const boolean = (fallback: boolean): BooleanField => ({ type: 'boolean', default: fallback });
export const file = (whereFrom?: string): FileField => ({ type: 'file', whereFrom });
export const string: StringField = { type: 'string' };

/** The reader of one file: its field reader and the directory relative paths start from. */
export interface FileContext {
  r: FieldReader;
  baseDir: string;
}

/** A file path, resolved against the config's directory; the file must exist. */
export function readFilePath(
  ctx: FileContext,
  path: YamlPath,
  value: unknown,
  whereFrom = '',
): string | undefined {
  const raw = ctx.r.string(path, value);
  if (raw === undefined) return undefined;
  const absolute = resolve(ctx.baseDir, raw);
  let isFile: boolean;
  try {
    isFile = statSync(absolute).isFile();
  } catch {
    isFile = false;
  }
  if (isFile) return absolute;
  return ctx.r.report(
    path,
    `${JSON.stringify(raw)} is not a readable file (relative paths start from ${ctx.baseDir})${whereFrom}`,
  );
}

/** One field's value; on a bad value the default stands in only until finish() throws the problems. */
function readField(ctx: FileContext, path: YamlPath, value: unknown, field: Field): unknown {
  const { r } = ctx;
  switch (field.type) {
    case 'integer':
      return value === undefined
        ? field.default
        : (r.integer(path, value, field.min, field.max) ?? field.default);
    case 'name':
      return value === undefined
        ? field.default
        : (r.string(path, value, { pattern: field.pattern, hint: field.hint, maxLength: 253 }) ??
            field.default);
    case 'boolean':
      return value === undefined ? field.default : (r.boolean(path, value) ?? field.default);
    case 'file':
      return value === undefined ? undefined : readFilePath(ctx, path, value, field.whereFrom);
    case 'string':
      return value === undefined ? undefined : r.string(path, value);
  }
}

/** The table's fields out of `mapping` (already checked for unknown keys), each under `path`. */
export function readFields<T extends FieldTable>(
  ctx: FileContext,
  path: YamlPath,
  mapping: Mapping,
  table: T,
): FieldValues<T> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(table))
    out[key] = readField(ctx, [...path, key], mapping[key], field);
  return out as FieldValues<T>;
}

/** An optional section: its mapping (only the table's keys allowed) read by the table; {} when absent. */
export function readSection<T extends FieldTable>(
  ctx: FileContext,
  path: YamlPath,
  value: unknown,
  table: T,
): FieldValues<T> {
  const mapping =
    value === undefined ? {} : (ctx.r.mapping(path, value, { optional: Object.keys(table) }) ?? {});
  return readFields(ctx, path, mapping, table);
}
