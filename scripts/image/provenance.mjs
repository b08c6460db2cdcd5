// What the image says about its origin, from git: the creation time (SOURCE_DATE_EPOCH, or the
// commit's time, so two builds of one commit agree), the commit and the version.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const git = (repo, ...args) =>
  execFileSync('git', args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A GitHub https URL of the repository, when one is known (the workflow's or origin's), else ''. */
function sourceUrl(repo) {
  if (process.env.GITHUB_SERVER_URL && process.env.GITHUB_REPOSITORY)
    return `${process.env.GITHUB_SERVER_URL}/${process.env.GITHUB_REPOSITORY}`;
  let origin;
  try {
    origin = git(repo, 'remote', 'get-url', 'origin');
  } catch {
    return '';
  }
  const m = origin.match(/^(?:https:\/\/|git@)github\.com[/:]([^/]+\/[^/]+?)(?:\.git)?$/);
  return m ? `https://github.com/${m[1]}` : '';
}

/**
 * @param {string} repo @param {{ version?: string, source?: string }} given
 * @returns {{ created: string, revision: string, version: string, source: string }}
 */
export function provenance(repo, given = {}) {
  const epoch = process.env.SOURCE_DATE_EPOCH ?? git(repo, 'log', '-1', '--format=%ct');
  if (!/^\d+$/.test(epoch)) throw new Error(`SOURCE_DATE_EPOCH must be seconds since 1970: ${epoch}`);
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  return {
    created: new Date(Number(epoch) * 1000).toISOString().replace('.000Z', 'Z'),
    revision: git(repo, 'rev-parse', 'HEAD'),
    version: given.version ?? pkg.version,
    source: given.source ?? sourceUrl(repo),
  };
}
