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
const files = (payload: unknown) => (path: string) => {
  if (path !== '/event.json') throw new Error('ENOENT');
  return JSON.stringify(payload);
};

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
        { ...withToken, GITHUB_EVENT_PATH: '/event.json', GITHUB_EVENT_NAME: 'pull_request' },
        files(pr({ fork: false, full_name: 'octo-org/octo-repo' })),
      ),
    ).not.toThrow();
  });

  test('without id-token permission says which permission to add', () => {
    const run = () => checkOidcAvailable({ GITHUB_EVENT_PATH: '/event.json' }, files({}));
    expect(run).toThrow(PreflightError);
    expect(run).toThrow(/Add `permissions: id-token: write`/);
  });

  test.each(['pull_request', 'pull_request_target'])(
    'refuses a fork pull request (%s), even with a token',
    (event) => {
      const run = () =>
        checkOidcAvailable(
          { ...withToken, GITHUB_EVENT_PATH: '/event.json', GITHUB_EVENT_NAME: event },
          files(pr({ fork: true, full_name: 'mallory/octo-repo' })),
        );
      expect(run).toThrow(/pull request from the fork mallory\/octo-repo/);
      expect(run).toThrow(/github.event.pull_request.head.repo.full_name == github.repository/);
    },
  );

  test('an unreadable event payload does not hide the permission check', () => {
    expect(() => checkOidcAvailable({ GITHUB_EVENT_PATH: '/missing.json' }, files({}))).toThrow(
      /id-token: write/,
    );
    expect(() =>
      checkOidcAvailable({ ...withToken, GITHUB_EVENT_PATH: '/missing.json' }, files({})),
    ).not.toThrow();
  });
});
