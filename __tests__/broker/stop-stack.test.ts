import { expect, test } from '@jest/globals';
import { closeOnce, StopStack } from '../../src/broker/stop-stack.js';

test('stops run newest first, each once; a failing stop is reported and the rest still run', async () => {
  const ran: string[] = [];
  const errors: string[] = [];
  const stack = new StopStack((name, err) => errors.push(`${name}: ${(err as Error).message}`));
  stack.push('policy', () => void ran.push('policy'));
  stack.push('listener', async () => {
    await new Promise((r) => setTimeout(r, 5));
    ran.push('listener');
  });
  stack.push('watch', () => {
    ran.push('watch');
    throw new Error('already gone');
  });
  await Promise.all([stack.unwind(), stack.unwind()]);
  expect(ran).toEqual(['watch', 'listener', 'policy']);
  expect(errors).toEqual(['watch: already gone']);
  await stack.unwind();
  expect(ran).toHaveLength(3);
});

test('a part that registers its stop after the unwinding began is stopped at once', async () => {
  const ran: string[] = [];
  const stack = new StopStack(() => undefined);
  await stack.unwind();
  stack.push('late', () => void ran.push('late'));
  await Promise.resolve();
  expect(ran).toEqual(['late']);
});

test('closeOnce closes once, with the first caller’s argument', async () => {
  const graces: number[] = [];
  const close = closeOnce(async (graceMs: number) => void graces.push(graceMs));
  await Promise.all([close(5_000), close(0)]);
  expect(graces).toEqual([5_000]);
});
