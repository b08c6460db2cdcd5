// Prints the CHANGELOG.md section of a version (`## [X.Y.Z] - YYYY-MM-DD` up to the next `## `), the
// release notes; exits 1 naming the version when it has no section, so a tag without notes stops the
// release (release.yml).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../go-tool.mjs';

/**
 * The section's text without its heading, trimmed; undefined when the version has none.
 * @param {string} changelog
 * @param {string} version
 */
export function changelogSection(changelog, version) {
  const lines = changelog.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`## [${version}] - `));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .join('\n')
    .trim();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const version = process.argv[2] ?? '';
  const section = changelogSection(readFileSync(join(repoRoot, 'CHANGELOG.md'), 'utf8'), version);
  if (!section) {
    console.error(`CHANGELOG.md has no "## [${version}] - YYYY-MM-DD" section with notes`);
    process.exit(1);
  }
  console.log(section);
}
