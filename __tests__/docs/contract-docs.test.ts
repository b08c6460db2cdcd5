// The contract (src/shared/contract.ts) as the docs state it: the TTL bounds in action.yml, the
// README and docs/, every error code in docs/api.md's status table, and every reason in the reason
// tables of docs/api.md and docs/policy.md, no more and no fewer.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REASON_FIXES } from '../../src/action/refusal-help.js';
import {
  CALLER_REASONS,
  ERROR_CODES,
  MAX_TTL_SECONDS,
  MIN_TTL_SECONDS,
  REASONS,
} from '../../src/shared/contract.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const read = (f: string) => readFileSync(join(repoRoot, f), 'utf8');

/** The text from the line starting with `start` up to the next `## ` heading. */
function section(text: string, start: string): string {
  const from = text.indexOf(start);
  if (from < 0) throw new Error(`no "${start}"`);
  const end = text.indexOf('\n## ', from + start.length);
  return text.slice(from, end < 0 ? undefined : end);
}

/** The backticked words in one column of each table row (header and rule rows have none). */
function columnCodes(table: string, column = 0): string[] {
  return table
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .flatMap((line) =>
      [...(line.split('|')[column + 1] ?? '').matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1]!),
    );
}

describe('TTL bounds', () => {
  const range = `${MIN_TTL_SECONDS}-${MAX_TTL_SECONDS}`;
  test.each([
    ['action.yml', `(${range})`],
    ['README.md', `(${range.replace('-', '–')})`],
    ['docs/action.md', `${range.replace('-', '–')};`],
    ['docs/policy.md', `${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS} seconds`],
    ['docs/api.md', `from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS}`],
  ])('%s states %s', (file, text) => {
    expect(read(file).replace(/\s+/g, ' ')).toContain(text);
  });
});

test('docs/api.md lists every error code, and only those', () => {
  const table = section(read('docs/api.md'), '| Status | Code');
  const codes = columnCodes(table, 1);
  expect([...codes].sort()).toEqual([...ERROR_CODES].sort());
});

test('docs/api.md and docs/policy.md list every refusal reason, and only those', () => {
  const api = columnCodes(section(read('docs/api.md'), 'Reasons seen in logs'));
  const policy = columnCodes(section(read('docs/policy.md'), '## Refusal reasons'));
  expect([...new Set([...api, ...policy])].sort()).toEqual([...REASONS].sort());
});

test('docs/action.md lists every reason a broker may send, with the fix the action prints', () => {
  const table = section(read('docs/action.md'), '| Reason');
  const rows = table
    .split('\n')
    .filter((line) => /^\| `/.test(line))
    .map((line) => {
      const [, reason, fix] = line.split(/\s*\|\s*/);
      return [reason!.replace(/`/g, ''), fix!.replace(/\\\|/g, '|')] as const;
    });
  expect(rows).toEqual(CALLER_REASONS.map((r) => [r, REASON_FIXES[r]]));
});
