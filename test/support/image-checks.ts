// What the tests require of the broker image's file system, as functions of its entries (so a test
// can also show each check catching what it must): no shell or package manager, every file owned by
// a Debian package of the image (its dpkg file list, with a matching MD5) or one of the files the
// build adds, and no executable but node and shared libraries.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { TarEntry } from './oci-image.js';

const SHELLS_AND_PACKAGE_MANAGERS = new Set([
  'sh',
  'bash',
  'dash',
  'ash',
  'zsh',
  'ksh',
  'busybox',
  'dpkg',
  'apt',
  'apt-get',
  'apk',
]);

/** Files and symlinks named as a shell or a package manager, wherever they are. */
export const shellsAndPackageManagers = (entries: Map<string, TarEntry>): string[] =>
  [...entries.values()]
    .filter((e) => e.type !== 'dir' && SHELLS_AND_PACKAGE_MANAGERS.has(basename(e.path)))
    .map((e) => e.path);

/** Every file each dpkg md5sums file of the status directory lists: path → [package, md5]. */
export function packageFiles(
  entries: Map<string, TarEntry>,
  statusDir: string,
): Map<string, [string, string]> {
  const owned = new Map<string, [string, string]>();
  for (const [path, e] of entries) {
    if (!path.startsWith(`${statusDir}/`) || !path.endsWith('.md5sums')) continue;
    const pkg = basename(path, '.md5sums');
    for (const line of e.data.toString('utf8').split('\n').filter(Boolean)) {
      const [md5, file] = line.split(/ {2}/);
      owned.set(`/${file}`, [pkg, md5 ?? '']);
    }
  }
  return owned;
}

/**
 * Regular files neither owned by a package (listed with a matching MD5) nor in `added`, with why.
 * The status directory's own files count as added.
 */
export function unownedFiles(entries: Map<string, TarEntry>, statusDir: string, added: string[]): string[] {
  const owned = packageFiles(entries, statusDir);
  const problems: string[] = [];
  for (const [path, e] of entries) {
    if (e.type !== 'file' || added.includes(path) || path.startsWith(`${statusDir}/`)) continue;
    const owner = owned.get(path);
    const md5 = createHash('md5').update(e.data).digest('hex');
    if (!owner) problems.push(`${path}: no package lists it`);
    else if (owner[1] !== md5)
      problems.push(`${path}: differs from ${owner[0]}'s (MD5 ${md5}, listed ${owner[1]})`);
  }
  return problems;
}

/** Regular files with an execute bit that are neither `allowed` nor shared libraries. */
export const unexpectedExecutables = (entries: Map<string, TarEntry>, allowed: string[]): string[] =>
  [...entries.values()]
    .filter((e) => e.type === 'file' && (e.mode & 0o111) !== 0)
    .filter((e) => !allowed.includes(e.path) && !/\.so(\.\d+)*$/.test(e.path))
    .map((e) => e.path);

/** Symlinks whose target does not exist in the image (resolved inside it). */
export function danglingSymlinks(entries: Map<string, TarEntry>): string[] {
  const resolve = (from: string, target: string) => {
    const parts = (
      target.startsWith('/') ? target : `${from.slice(0, from.lastIndexOf('/'))}/${target}`
    ).split('/');
    const out: string[] = [];
    for (const p of parts) {
      if (p === '..') out.pop();
      else if (p && p !== '.') out.push(p);
    }
    return `/${out.join('/')}`;
  };
  return [...entries.values()]
    .filter((e) => e.type === 'symlink' && !entries.has(resolve(e.path, e.linkname)))
    .map((e) => `${e.path} -> ${e.linkname}`);
}
