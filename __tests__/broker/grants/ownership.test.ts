// The two ownership rules and their intended difference: a renewal (which also showed the grant's
// own token) answers 403 and accepts a grant without a recorded job; a revocation on a GitHub JWT
// alone answers 404 and needs the job on both sides.
import { describe, expect, test } from '@jest/globals';
import { requireRenewer, requireRevoker } from '../../../src/broker/grants/ownership.js';
import {
  CHECK_RUN_ID_LABEL,
  REPOSITORY_ID_LABEL,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
} from '../../../src/broker/naming.js';

const run = { repository_id: '42', run_id: '7', run_attempt: '1' };
const labels = (job?: string) => ({
  [REPOSITORY_ID_LABEL]: '42',
  [RUN_ID_LABEL]: '7',
  [RUN_ATTEMPT_LABEL]: '1',
  ...(job === undefined ? {} : { [CHECK_RUN_ID_LABEL]: job }),
});
const refusal = (check: () => void) => {
  try {
    check();
    return 'allowed';
  } catch (err) {
    const e = err as { code: string; reason: string };
    return `${e.code} ${e.reason}`;
  }
};

describe.each([
  ['renewal', requireRenewer, 'ERR_FORBIDDEN'],
  ['revocation', requireRevoker, 'ERR_NOT_FOUND'],
])('%s', (_name, require, code) => {
  test('the same job of the same run may', () => {
    expect(refusal(() => require(labels('9'), { ...run, check_run_id: '9' }))).toBe('allowed');
  });

  test.each([
    ['repository', { repository_id: '43' }],
    ['run', { run_id: '8' }],
    ['attempt', { run_attempt: '2' }],
  ])('another %s may not', (_what, other) => {
    expect(refusal(() => require(labels('9'), { ...run, check_run_id: '9', ...other }))).toBe(
      `${code} grant_of_another_run`,
    );
  });

  test('a sibling job of the same run may not', () => {
    expect(refusal(() => require(labels('9'), { ...run, check_run_id: '10' }))).toBe(
      `${code} grant_of_another_job`,
    );
  });
});

test('a grant that recorded no job: renewable by its run (it showed its token), never revocable by a JWT alone', () => {
  expect(refusal(() => requireRenewer(labels(), { ...run, check_run_id: '9' }))).toBe('allowed');
  expect(refusal(() => requireRevoker(labels(), { ...run, check_run_id: '9' }))).toBe(
    'ERR_NOT_FOUND grant_of_another_job',
  );
  expect(refusal(() => requireRevoker(labels('9'), run))).toBe('ERR_NOT_FOUND grant_of_another_job');
});
