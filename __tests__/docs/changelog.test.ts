// The release convention (docs/releasing.md) holds in the tree: CHANGELOG.md is well formed with
// the newest version first, the broker image deploy/ runs is the package's version, and the
// npm/node commands the release steps give exist.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bashBlocks,
  commandLines,
  commandProblem,
  repoFacts,
  simpleCommands,
} from './support/readme-commands.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const read = (f: string) => readFileSync(join(repoRoot, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { version: string };

/** `## [X.Y.Z] - YYYY-MM-DD` and `## [Unreleased]` headings, in file order. */
function versionHeadings(changelog: string): string[] {
  return changelog.split('\n').filter((l) => l.startsWith('## '));
}

const semver = (v: string) => v.split('.').map(Number);
const newerFirst = (a: string, b: string) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i += 1) if (x[i] !== y[i]) return y[i]! - x[i]!;
  return 0;
};

describe('CHANGELOG.md and the release convention', () => {
  const headings = versionHeadings(read('CHANGELOG.md'));

  test('every version heading is [Unreleased] (first, at most once) or [X.Y.Z] - YYYY-MM-DD', () => {
    expect(headings.length).toBeGreaterThan(0);
    for (const [i, h] of headings.entries()) {
      if (h === '## [Unreleased]') expect(i).toBe(0);
      else expect(h).toMatch(/^## \[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}$/);
    }
  });

  test('released versions are listed newest first, each once, and none is newer than package.json', () => {
    const versions = headings.flatMap((h) => /^## \[(\d+\.\d+\.\d+)\]/.exec(h)?.[1] ?? []);
    expect(new Set(versions).size).toBe(versions.length);
    expect([...versions].sort(newerFirst)).toEqual(versions);
    if (versions[0]) expect(newerFirst(versions[0], pkg.version)).toBeGreaterThanOrEqual(0);
  });

  test('the broker image deploy/ runs carries the package version', () => {
    const images = [...read('deploy/deployment.yaml').matchAll(/image:\s*(\S+)/g)].map((m) => m[1]);
    expect(images).toEqual([`ghcr.io/k8s-ephemeral-access/broker:${pkg.version}`]);
  });

  test("the release steps' npm and node commands exist in this repository", () => {
    const repo = repoFacts(repoRoot);
    const ours = bashBlocks(read('docs/releasing.md'), 'all')
      .flatMap(commandLines)
      .flatMap(simpleCommands)
      .filter((w) => ['npm', 'node', 'npx'].includes(w[0]!) || /^(\.ci|scripts)\//.test(w[0]!));
    expect(ours.length).toBeGreaterThanOrEqual(5);
    expect(ours.flatMap((w) => commandProblem(w, repo) ?? [])).toEqual([]);
  });
});
