// Watches over the broker's own connection (connection.ts's stream()): the answer is read from
// undici's body stream as lines of JSON, one event each, on the pooled TLS connections. client-node's
// Watch opens every watch through a new undici Agent (a TLS handshake each time a watch ends and is
// opened again) and reads it through fetch's web streams and readline: about 25 µs more of CPU per
// event (docs/benchmarks.md, finding 23), and an HTTP stack of its own beside the connection's. The
// kubeconfigs the connection cannot serve (a proxy, plain HTTP) keep client-node's Watch (clients.ts).
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { ApiException } from '@kubernetes/client-node';
import type { KubeConnection } from './connection.js';
import type { Watcher } from './watches.js';

/** As client-node's: a watch that sends nothing this long (no event, no bookmark) has failed. */
export const WATCH_INACTIVITY_MS = 30_000;

/**
 * The longest line taken for one event. The API server stores no object over about 1.5 MiB; a line
 * still growing past this is no watch event, and holding it would let a broken stream fill memory.
 */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024;

/** One line's event to `onEvent`; false when the watch must end (`finish` was told why). */
function deliver<T>(
  line: string,
  onEvent: (type: string, object: T) => void,
  finish: (err?: unknown) => void,
): boolean {
  if (line.trim() === '') return true;
  let event: { type: string; object: T };
  try {
    event = JSON.parse(line) as typeof event;
  } catch {
    // Not the stream a watch answers: end it, and its loop reads afresh.
    finish(new Error('a watch event is not JSON'));
    return false;
  }
  try {
    onEvent(event.type, event.object);
  } catch (err) {
    finish(err);
    return false;
  }
  return true;
}

/** Reads `body` as one JSON event per line until it ends; `finish` is told how it ended. */
function readEvents<T>(
  body: Readable,
  onEvent: (type: string, object: T) => void,
  finish: (err?: unknown) => void,
  isFinished: () => boolean,
): void {
  let partial = '';
  // UTF-8 across chunk boundaries: a character split between two chunks stays whole. (undici's
  // body stream does not take setEncoding: its chunks stay Buffers.)
  const decoder = new StringDecoder('utf8');
  body.on('data', (bytes: Buffer) => {
    const chunk = decoder.write(bytes);
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
      if (isFinished()) return;
      const line = partial + chunk.slice(start, end);
      partial = '';
      start = end + 1;
      if (!deliver(line, onEvent, finish)) return;
    }
    partial += chunk.slice(start);
    if (partial.length > MAX_EVENT_CHARS) finish(new Error('a watch event is longer than any object'));
  });
  let ended = false;
  body.on('end', () => {
    ended = true;
    // The last line may come without its newline (as readline, client-node's reader, takes it).
    if (!isFinished() && !deliver(partial + decoder.end(), onEvent, finish)) return;
    // undici hands the connection back to its pool one turn after the answer's end: the loop's next
    // watch, opened at once, would otherwise take a new connection (and TLS handshake).
    setImmediate(() => finish());
  });
  body.on('error', (err) => finish(err));
  // A body closed with neither its end nor an error (destroyed from outside) is still no clean end.
  body.on('close', () => {
    if (!ended) finish(new Error('the watch connection closed'));
  });
}

/** The Watcher of `connection` (kube/watches.ts); `inactivityMs` is for tests. */
export function pooledWatcher(
  connection: Pick<KubeConnection, 'stream'>,
  inactivityMs = WATCH_INACTIVITY_MS,
): Watcher {
  return {
    async watch(path, query, onEvent, done) {
      const controller = new AbortController();
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        controller.abort();
        done(err);
      };
      const search = new URLSearchParams({ watch: 'true' });
      for (const [key, value] of Object.entries(query))
        if (value !== undefined) search.set(key, String(value));
      const what = `watch ${path}`;
      try {
        const answer = await connection.stream(`${path}?${search}`, controller.signal, inactivityMs);
        if (answer.statusCode !== 200) {
          // The API server's Status, read as every other refused call is (kube/errors.ts).
          const text = await answer.body.text();
          finish(new ApiException(answer.statusCode, what, text, answer.headers as Record<string, string>));
        } else readEvents(answer.body, onEvent, finish, () => finished || controller.signal.aborted);
      } catch (err) {
        finish(err);
      }
      return controller;
    },
  };
}
