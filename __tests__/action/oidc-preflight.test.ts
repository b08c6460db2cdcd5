// Fail-fast checks before any token request: fork pull requests and a missing id-token permission.
import { describe, expect, test } from '@jest/globals';
import { checkOidcAvailable, forkHeadRepository, PreflightError } from '../../src/action/oidc-preflight.js';

const withToken = {
  ACTIONS_ID_TOKEN_REQUEST_URL: 'https://t/x?api-version=2.0',
  ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'rt',
};
const pr = (head: unknown, base = 'octo-org/octo-repo') => ({
  pull_request: { head: { repo: head }, base: { repo: { full_name: base } } },
});
/** The run as @actions/github's context presents it. */
const run = (eventName: string, payload: object) => ({ eventName, payload });

describe('forkHeadRepository', () => {
  test('recognises forks by the fork flag, by a different head repository, or a deleted head', () => {
    expect(forkHeadRepository(pr({ fork: true, full_name: 'mallory/octo-repo' }))).toBe('mallory/octo-repo');
    expect(forkHeadRepository(pr({ fork: false, full_name: 'mallory/octo-repo' }))).toBe('mallory/octo-repo');
    expect(forkHeadRepository(pr(null))).toBe('(deleted repository)');
  });
  test('same-repository pull requests and non-PR events are not forks', () => {
    expect(forkHeadRepository(pr({ fork: false, full_name: 'Octo-Org/octo-repo' }))).toBeUndefined();
    expect(forkHeadRepository({ ref: 'refs/heads/main' })).toBeUndefined();
    expect(forkHeadRepository(null)).toBeUndefined();
  });
});

describe('checkOidcAvailable', () => {
  test('passes with the token endpoint and a same-repository event', () => {
    expect(() =>
      checkOidcAvailable(
        withToken,
        run('pull_request', pr({ fork: false, full_name: 'octo-org/octo-repo' })),
      ),
    ).not.toThrow();
  });

  test('without id-token permission says which permission to add', () => {
    const check = () => checkOidcAvailable({}, run('push', {}));
    expect(check).toThrow(PreflightError);
    expect(check).toThrow(/Add `permissions: id-token: write`/);
  });

  test.each(['pull_request', 'pull_request_target'])(
    'refuses a fork pull request (%s), even with a token',
    (event) => {
      const check = () =>
        checkOidcAvailable(withToken, run(event, pr({ fork: true, full_name: 'mallory/octo-repo' })));
      expect(check).toThrow(`pull request from the fork mallory/octo-repo (event "${event}")`);
      expect(check).toThrow(/github.event.pull_request.head.repo.full_name == github.repository/);
    },
  );

  test('an empty payload (no event file: the context then holds {}) does not hide the permission check', () => {
    expect(() => checkOidcAvailable({}, run('', {}))).toThrow(/id-token: write/);
    expect(() => checkOidcAvailable(withToken, run('', {}))).not.toThrow();
  });
});
