// The lines of the API server's audit log written since a moment, that contain a needle: read from
// the end of the file backwards, a chunk at a time, until a line completed before the moment (less
// a slack for the order in which concurrent calls are written). Bounded in bytes and in time, so a
// large log costs a revocation a known amount; the answer says whether the read went back far
// enough. Lines are split on the newline byte (never inside a UTF-8 character) and only the lines
// holding the needle are decoded.
import { open } from 'node:fs/promises';

/** How much is read at a time. */
export const CHUNK_BYTES = 1024 * 1024;
/**
 * The log is written as calls complete, so its order is that of `stageTimestamp` up to the calls
 * completing at about the same moment: a line this much older than the moment ends the read.
 */
export const ORDER_SLACK_MS = 5_000;

export interface TailOptions {
  /** Epoch ms: the lines wanted were written at or after it. */
  since: number;
  /** Only lines containing it are returned (and decoded). */
  needle: string;
  maxBytes: number;
  /** The read stops when this is past (checked between chunks). */
  deadline: number;
  now: () => number;
  /** CHUNK_BYTES unless a test wants many chunks of a small file. */
  chunkBytes?: number;
}

export interface TailResult {
  /** The matching lines, the newest first. */
  lines: string[];
  /**
   * Whether the read reached a line completed at or before `since`: every line since then was read.
   * False when the file begins later (rotated, or cut) or a bound stopped the read.
   */
  complete: boolean;
  /** What stopped the read short of `since`, if anything did. */
  stoppedBy?: 'bytes' | 'time' | 'file-start';
  bytesRead: number;
}

const NEWLINE = 0x0a;
const STAGE_TIMESTAMP = /"stageTimestamp"\s*:\s*"([^"]+)"/;

/** The completion time of a line, from its text (no JSON parse); NaN when it has none. */
function lineTime(line: Buffer): number {
  const m = STAGE_TIMESTAMP.exec(line.toString('utf8'));
  return m ? Date.parse(m[1]!) : NaN;
}

/** Splits complete lines (the buffer starts and ends at line boundaries). */
function splitLines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(NEWLINE); i >= 0; i = buf.indexOf(NEWLINE, start)) {
    if (i > start) out.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

export async function readAuditTail(file: string, o: TailOptions): Promise<TailResult> {
  const handle = await open(file, 'r');
  try {
    const needle = Buffer.from(o.needle, 'utf8');
    const lines: string[] = [];
    let pos = (await handle.stat()).size;
    // The start of the chunk read last: its first line may continue in the chunk before it.
    let carry = Buffer.alloc(0);
    let bytesRead = 0;
    while (pos > 0) {
      if (bytesRead >= o.maxBytes) return { lines, complete: false, stoppedBy: 'bytes', bytesRead };
      if (o.now() > o.deadline) return { lines, complete: false, stoppedBy: 'time', bytesRead };
      const length = Math.min(o.chunkBytes ?? CHUNK_BYTES, pos, o.maxBytes - bytesRead);
      pos -= length;
      const chunk = Buffer.alloc(length);
      await handle.read(chunk, 0, length, pos);
      bytesRead += length;
      const joined = Buffer.concat([chunk, carry]);
      // Unless the file starts here, the bytes before the first newline belong to an earlier line.
      const cut = pos === 0 ? 0 : joined.indexOf(NEWLINE) + 1;
      if (pos > 0 && cut === 0) {
        carry = joined;
        continue;
      }
      carry = joined.subarray(0, cut);
      const whole = splitLines(joined.subarray(cut));
      collect(whole, needle, lines);
      const oldest = earliestTime(whole);
      if (oldest !== undefined && oldest < o.since - ORDER_SLACK_MS)
        return { lines, complete: true, bytesRead };
      // The file's first line: complete only if the log began before the moment.
      if (pos === 0 && oldest !== undefined && oldest <= o.since) return { lines, complete: true, bytesRead };
    }
    return { lines, complete: false, stoppedBy: 'file-start', bytesRead };
  } finally {
    await handle.close();
  }
}

/** The matching lines of a chunk, appended newest first. */
function collect(chunkLines: Buffer[], needle: Buffer, into: string[]): void {
  for (let i = chunkLines.length - 1; i >= 0; i -= 1)
    if (chunkLines[i]!.includes(needle)) into.push(chunkLines[i]!.toString('utf8'));
}

/** The time of the chunk's first line that has one: the chunk's oldest, as the log is in order. */
function earliestTime(chunkLines: Buffer[]): number | undefined {
  for (const line of chunkLines) {
    const t = lineTime(line);
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}
