// ocibuild (scripts/image/ocibuild, go-containerregistry) on small plans: its output depends only on
// what the plan says (not on the order of entries, the source files' times or owners, or the folder
// it works in), a change of content, mode or creation time changes the digest, and a tar source's
// Include, Exclude, Keep, Rename and Md5sums select exactly what they say.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ensureOcibuild, imageCache, runOcibuild } from '../../scripts/image/ocibuild.mjs';
import { readImage } from '../../test/support/oci-image.js';

const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-ocibuild-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let binary: string;
let runs = 0;

type Entry = Record<string, unknown>;
const created = '2026-01-02T03:04:05Z';
const plan = (entries: Entry[], more: Record<string, unknown> = {}) => ({
  architecture: 'amd64',
  created,
  layers: [{ createdBy: 'test', entries }],
  config: {
    user: '10001:10001',
    entrypoint: ['/app'],
    cmd: [],
    env: [],
    workingDir: '/',
    exposedPorts: [],
    labels: {},
  },
  imageName: 'example.test/img:1',
  tag: '1',
  ...more,
});

/** Runs ocibuild on a plan in a folder of its own; the report and the layout tarball's path. */
function build(p: ReturnType<typeof plan>) {
  const work = join(dir, `run-${++runs}`);
  mkdirSync(work, { recursive: true });
  const out = join(work, 'image.oci.tar');
  writeFileSync(join(work, 'plan.json'), JSON.stringify({ ...p, out, workDir: join(work, 'oci') }));
  return runOcibuild(binary, join(work, 'plan.json'));
}

/** A tar of files `a/x` and `a/y` (and a hard link to x), with the given time and owner. */
function sourceTar(name: string, mtime: number, owner: number): string {
  const src = join(dir, `${name}-src`);
  mkdirSync(join(src, 'a'), { recursive: true });
  writeFileSync(join(src, 'a', 'x'), 'x\n');
  writeFileSync(join(src, 'a', 'y'), 'y\n');
  linkSync(join(src, 'a', 'x'), join(src, 'a', 'z'));
  for (const f of ['a/x', 'a/y', 'a']) utimesSync(join(src, f), mtime, mtime);
  const tar = join(dir, `${name}.tar`);
  execFileSync('tar', ['-cf', tar, `--owner=${owner}`, `--group=${owner}`, '-C', src, 'a']);
  return tar;
}

beforeAll(() => {
  binary = ensureOcibuild(imageCache());
}, 600_000);

describe('ocibuild', () => {
  test('the same content gives the same digest whatever the entry order, times, owners and folder', () => {
    const host = join(dir, 'host-file');
    writeFileSync(host, 'from the host\n');
    const entries = (tar: string): Entry[] => [
      { text: 'hello\n', path: '/etc/hello', mode: 0o644 },
      { dir: true, path: '/tmp', mode: 0o1777 },
      { file: host, path: '/app', mode: 0o755 },
      { tar },
    ];
    const first = build(plan(entries(sourceTar('one', 1_000_000, 0))));
    utimesSync(host, 2_000_000, 2_000_000);
    const second = build(plan(entries(sourceTar('two', 2_000_000, 1234)).reverse()));
    expect(second.digest).toBe(first.digest);
    expect(second.out).not.toBe(first.out);
    const layer = readImage(first.out).layers[0] ?? [];
    expect(layer.map((e) => [e.path, e.type, e.mode.toString(8), e.uid, e.gid])).toEqual([
      ['/a', 'dir', '755', 0, 0],
      ['/a/x', 'file', '644', 0, 0],
      ['/a/y', 'file', '644', 0, 0],
      ['/a/z', 'file', '644', 0, 0], // a hard link in the source: a copy in the layer
      ['/app', 'file', '755', 0, 0],
      ['/etc', 'dir', '755', 0, 0],
      ['/etc/hello', 'file', '644', 0, 0],
      ['/tmp', 'dir', '1777', 0, 0],
    ]);
    expect(layer.find((e) => e.path === '/a/z')?.data.toString()).toBe('x\n');
    expect(new Set(layer.map((e) => e.mtime))).toEqual(new Set([Date.parse(created) / 1000]));
  });

  test('a change of content, mode or creation time changes the digest', () => {
    const base = (text: string, mode: number) => [{ text, path: '/etc/hello', mode }];
    const digests = [
      build(plan(base('hello\n', 0o644))).digest,
      build(plan(base('hello!\n', 0o644))).digest,
      build(plan(base('hello\n', 0o600))).digest,
      build(plan(base('hello\n', 0o644), { created: '2026-01-02T03:04:06Z' })).digest,
    ];
    expect(new Set(digests).size).toBe(4);
  });

  test("a tar source keeps what Include, Exclude and Keep select, renamed, with its files' MD5s", () => {
    const tar = sourceTar('select', 1_000_000, 0);
    const entries = [
      {
        tar,
        strip: '/a',
        exclude: ['/x', '/y', '/z'],
        keep: ['/y'],
        rename: { '/y': '/usr/y' },
        md5sums: '/sums',
      },
    ];
    const layer = readImage(build(plan(entries)).out).layers[0] ?? [];
    expect(layer.map((e) => e.path)).toEqual(['/sums', '/usr', '/usr/y']);
    const md5 = createHash('md5').update('y\n').digest('hex');
    expect(layer.find((e) => e.path === '/sums')?.data.toString()).toBe(`${md5}  usr/y\n`);
    const included = readImage(build(plan([{ tar, include: ['/a/x'] }])).out).layers[0] ?? [];
    expect(included.map((e) => e.path)).toEqual(['/a', '/a/x']);
  });

  test('one path given twice, differently, fails the build', () => {
    const twice = [
      { text: 'one\n', path: '/etc/hello', mode: 0o644 },
      { text: 'two\n', path: '/etc/hello', mode: 0o644 },
    ];
    expect(() => build(plan(twice))).toThrow(/\/etc\/hello is given twice, differently/);
  });
});
