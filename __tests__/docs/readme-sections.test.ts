// The README's sections that issues asked for, by heading: a merge once dropped one without any test
// noticing. A heading renamed on purpose is renamed here too.
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../test/support/repo-root.js';

const REQUIRED = [
  '## How it works',
  '## For workflow authors',
  '### Quick start',
  '### Inputs',
  '### Outputs',
  '### Long jobs with short grants: `credentials: exec`',
  '### Several grants in one job, proxies, runners',
  '## For cluster admins',
  '### Deploy the broker',
  '### Build the image yourself (no Docker needed)',
  '### Write a policy',
  '### Policy tooling and hot reload',
  '### The admission guard',
  '### The RBAC the broker needs, and why',
  '### Private cluster (gateway mode)',
  '### Monitoring',
  '### Upgrades',
  '## Security model',
  '### What is guaranteed',
  '### What gateway mode does not cover',
  '## Troubleshooting',
  '## Development',
];

test('the README has each required section once', () => {
  const headings = readFileSync(join(repoRoot, 'README.md'), 'utf8')
    .split('\n')
    .filter((l) => /^#{2,3} /.test(l));
  expect(REQUIRED.map((h) => [h, headings.filter((l) => l === h).length])).toEqual(
    REQUIRED.map((h) => [h, 1]),
  );
  expect(headings.length).toBe(new Set(headings).size);
});
