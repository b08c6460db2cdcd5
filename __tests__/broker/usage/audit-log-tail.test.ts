// Reading the audit log's tail back to a grant's start (usage/audit-log-tail.ts): only the lines
// holding the needle, whole (lines and UTF-8 characters cut by chunk boundaries), no further back
// than needed, and an honest `complete` when the file begins later or a bound stops the read.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ORDER_SLACK_MS, readAuditTail } from '../../../src/broker/usage/audit-log-tail.js';
import { auditEvent } from './support/audit-events.js';

const GRANT = 'system:serviceaccount:ci:gha-0123456789abcdef0123456789abcdef';
const needle = JSON.stringify(GRANT);
const T0 = Date.parse('2026-12-05T10:00:00Z');
const OTHER = 'system:serviceaccount:kube-system:deployment-controller';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-tail-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function logFile(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
  return path;
}

const options = (since: number, extra: Partial<Parameters<typeof readAuditTail>[1]> = {}) => ({
  since,
  needle,
  maxBytes: 64 * 1024 * 1024,
  deadline: Infinity,
  now: () => 0,
  ...extra,
});

describe('the tail since a moment', () => {
  // An hour of another user's calls, one a second; the grant starts 100 s before the end.
  const start = T0 + 3500_000;
  const lines: string[] = [];
  const grantLines: string[] = [];
  // The bytes of the lines completed since the grant's start less the order slack: what must be read.
  let needed = 0;
  for (let s = 0; s < 3600; s += 1) {
    const at = T0 + s * 1000;
    const line = auditEvent({ user: OTHER, at });
    lines.push(line);
    if (at >= start - ORDER_SLACK_MS) needed += Buffer.byteLength(line) + 1;
    if (at > start && s % 10 === 0) {
      const mine = auditEvent({ user: GRANT, at: at + 500, name: `cm-${s}` });
      lines.push(mine);
      grantLines.push(mine);
      needed += Buffer.byteLength(mine) + 1;
    }
  }

  test("returns the grant's lines, newest first, and reads back only to its start", async () => {
    const file = logFile('hour.log', lines);
    const tail = await readAuditTail(file, options(start, { chunkBytes: 4096 }));
    expect(tail.lines).toEqual([...grantLines].reverse());
    expect(tail.complete).toBe(true);
    // The last ~105 s of a 3,600 s log, give or take the chunk that holds the boundary.
    expect(tail.bytesRead).toBeGreaterThanOrEqual(needed);
    expect(tail.bytesRead).toBeLessThan(needed + 2 * 4096);
    expect(tail.bytesRead).toBeLessThan(statSync(file).size / 20);
  });

  test('the same with the default chunk (the whole file fits in one): complete, the same lines', async () => {
    const tail = await readAuditTail(logFile('hour-1.log', lines), options(start));
    expect([tail.lines, tail.complete]).toEqual([[...grantLines].reverse(), true]);
  });
});

test('lines and UTF-8 characters cut by chunk boundaries come out whole', async () => {
  const lines = [
    auditEvent({ user: OTHER, at: T0 - 60_000 }),
    auditEvent({ user: GRANT, at: T0 + 1000, name: 'ünïcødé-名前' }),
    auditEvent({ user: OTHER, at: T0 + 2000, name: '€€€' }),
    auditEvent({ user: GRANT, at: T0 + 3000, name: '日本語-テスト' }),
  ];
  const file = logFile('utf8.log', lines);
  for (const chunkBytes of [1, 3, 7, 64, 1000])
    expect((await readAuditTail(file, options(T0, { chunkBytes }))).lines).toEqual([lines[3], lines[1]]);
});

test('a file that begins after the grant did (rotated) is read whole and said incomplete', async () => {
  const lines = [
    auditEvent({ user: GRANT, at: T0 + 60_000, name: 'a' }),
    auditEvent({ user: OTHER, at: T0 + 61_000 }),
  ];
  const file = logFile('rotated.log', lines);
  const tail = await readAuditTail(file, options(T0, { chunkBytes: 100 }));
  expect(tail).toMatchObject({ lines: [lines[0]], complete: false, stoppedBy: 'file-start' });
  expect(tail.bytesRead).toBe(statSync(file).size);
  // Begun before the grant: complete.
  const older = logFile('older.log', [auditEvent({ user: OTHER, at: T0 - 1000 }), ...lines]);
  expect(await readAuditTail(older, options(T0))).toMatchObject({ complete: true });
});

test('an empty file: nothing, incomplete', async () => {
  expect(await readAuditTail(logFile('empty.log', []), options(T0))).toEqual({
    lines: [],
    complete: false,
    stoppedBy: 'file-start',
    bytesRead: 0,
  });
});

test('the byte bound and the time bound stop the read, said incomplete', async () => {
  const lines = Array.from({ length: 200 }, (_, i) =>
    auditEvent({ user: i % 2 ? GRANT : OTHER, at: T0 + i * 1000 }),
  );
  const file = logFile('bounded.log', lines);
  const byBytes = await readAuditTail(file, options(T0, { chunkBytes: 1000, maxBytes: 5000 }));
  expect(byBytes).toMatchObject({ complete: false, stoppedBy: 'bytes', bytesRead: 5000 });
  expect(byBytes.lines.length).toBeGreaterThan(0);
  expect(byBytes.lines.length).toBeLessThan(100);
  let clock = 0;
  const byTime = await readAuditTail(
    file,
    options(T0, { chunkBytes: 1000, deadline: 2, now: () => clock++ }),
  );
  expect(byTime).toMatchObject({ complete: false, stoppedBy: 'time', bytesRead: 3000 });
});

test('a missing file is an error for the caller to report', async () => {
  await expect(readAuditTail(join(dir, 'nope.log'), options(T0))).rejects.toThrow(/ENOENT/);
});
