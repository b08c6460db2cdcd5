// The checks the image test applies (test/support/image-checks.ts) catch what they are there for:
// each is shown a file system with exactly one problem, and must name it.
import { createHash } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import {
  danglingSymlinks,
  shellsAndPackageManagers,
  unexpectedExecutables,
  unownedFiles,
} from '../../test/support/image-checks.js';
import type { TarEntry } from '../../test/support/oci-image.js';

const STATUS = '/var/lib/dpkg/status.d';
const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const entry = (path: string, type: TarEntry['type'], data = '', mode = 0o644, linkname = ''): TarEntry => ({
  path,
  type,
  mode,
  uid: 0,
  gid: 0,
  mtime: 0,
  linkname,
  data: Buffer.from(data),
});

/** A tiny image: libc6 owns one library, the build adds node; then `extra` on top. */
function fs(...extra: TarEntry[]): Map<string, TarEntry> {
  const all = [
    entry('/lib', 'dir', '', 0o755),
    entry('/lib/libc.so.6', 'file', 'libc', 0o755),
    entry('/lib64/ld.so', 'symlink', '', 0o777, '/lib/libc.so.6'),
    entry('/usr/bin/node', 'file', 'node', 0o755),
    entry('/var/lib/dpkg', 'dir', '', 0o755),
    entry(`${STATUS}/libc6`, 'file', 'Package: libc6\n'),
    entry(`${STATUS}/libc6.md5sums`, 'file', `${md5('libc')}  lib/libc.so.6\n`),
    ...extra,
  ];
  return new Map(all.map((e) => [e.path, e]));
}

describe('the image checks', () => {
  test('a clean file system passes every check', () => {
    const clean = fs();
    expect(shellsAndPackageManagers(clean)).toEqual([]);
    expect(unownedFiles(clean, STATUS, ['/usr/bin/node'])).toEqual([]);
    expect(unexpectedExecutables(clean, ['/usr/bin/node'])).toEqual([]);
    expect(danglingSymlinks(clean)).toEqual([]);
  });

  test('a shell, busybox or a package manager is found, as a file or a symlink', () => {
    expect(shellsAndPackageManagers(fs(entry('/bin/sh', 'symlink', '', 0o777, 'busybox')))).toEqual([
      '/bin/sh',
    ]);
    expect(shellsAndPackageManagers(fs(entry('/usr/bin/busybox', 'file')))).toEqual(['/usr/bin/busybox']);
    expect(shellsAndPackageManagers(fs(entry('/usr/bin/dpkg', 'file')))).toEqual(['/usr/bin/dpkg']);
  });

  test('a file no package lists, or one that differs from its package, is named', () => {
    expect(unownedFiles(fs(entry('/etc/extra', 'file', 'x')), STATUS, ['/usr/bin/node'])).toEqual([
      '/etc/extra: no package lists it',
    ]);
    const changed = fs(entry('/lib/libc.so.6', 'file', 'patched libc', 0o755));
    expect(unownedFiles(changed, STATUS, ['/usr/bin/node'])).toEqual([
      `/lib/libc.so.6: differs from libc6's (MD5 ${md5('patched libc')}, listed ${md5('libc')})`,
    ]);
    expect(unownedFiles(fs(), STATUS, [])).toEqual(['/usr/bin/node: no package lists it']);
  });

  test('an executable that is neither allowed nor a shared library is named', () => {
    expect(unexpectedExecutables(fs(entry('/usr/bin/tool', 'file', '', 0o755)), ['/usr/bin/node'])).toEqual([
      '/usr/bin/tool',
    ]);
  });

  test('a symlink to a path the image does not have is named', () => {
    expect(danglingSymlinks(fs(entry('/lib64/gone', 'symlink', '', 0o777, '../lib/libgone.so')))).toEqual([
      '/lib64/gone -> ../lib/libgone.so',
    ]);
  });
});
