// One watch of a loop (src/broker/kube/watches.ts, OpenWatches.once) over a scripted Watcher: the
// server's end resolves it; an ERROR event rejects it with the API server's message, and nothing the
// watch delivers after that reaches the loop (it reads afresh from its last version); stop() ends
// the watches in flight.
import { expect, test } from '@jest/globals';
import { OpenWatches, type Watcher } from '../../../src/broker/kube/watches.js';

type Event = [type: string, object: { message?: string; name?: string }];

/** A watcher that delivers `events` at once, then ends (or stays open with `open`). */
function scripted(events: Event[], open = false): Watcher & { aborted: () => boolean } {
  let controller: AbortController | undefined;
  return {
    aborted: () => controller?.signal.aborted ?? false,
    async watch(_path, _query, onEvent, done) {
      controller = new AbortController();
      controller.signal.addEventListener('abort', () => done(new Error('aborted')));
      queueMicrotask(() => {
        for (const [type, object] of events) (onEvent as (t: string, o: unknown) => void)(type, object);
        if (!open) done();
      });
      return controller;
    },
  };
}

test('the events reach the loop and the server ending the watch resolves it', async () => {
  const seen: string[] = [];
  await new OpenWatches().once(
    scripted([
      ['ADDED', { name: 'a' }],
      ['DELETED', { name: 'a' }],
    ]),
    '/p',
    {},
    (type, o: { name?: string }) => seen.push(`${type} ${o.name}`),
  );
  expect(seen).toEqual(['ADDED a', 'DELETED a']);
});

test('an ERROR event rejects the watch with its message; nothing after it reaches the loop', async () => {
  const seen: string[] = [];
  const watcher = scripted([
    ['ADDED', { name: 'a' }],
    ['ERROR', { message: 'too old resource version: 1 (2)' }],
    ['DELETED', { name: 'b' }],
  ]);
  await expect(
    new OpenWatches().once(watcher, '/p', {}, (type, o: { name?: string }) => seen.push(`${type} ${o.name}`)),
  ).rejects.toThrow('watch error "too old resource version: 1 (2)"');
  expect(seen).toEqual(['ADDED a']);
  expect(watcher.aborted()).toBe(true);
});

test('stop() ends the watches in flight', async () => {
  const watches = new OpenWatches();
  const watcher = scripted([], true);
  const once = watches.once(watcher, '/p', {}, () => undefined);
  await Promise.resolve();
  watches.stop();
  await expect(once).rejects.toThrow('aborted');
  expect(watches.stopped).toBe(true);
});
