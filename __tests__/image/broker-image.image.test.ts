// The broker image built by the one command (scripts/image/build.mjs), without a container engine:
// reproducible (two builds in two folders, same digest, for amd64 and arm64), no shell, uid 10001,
// every file owned by a Debian package of the image or added by the build, and the broker starts
// from the image's own root filesystem with only its libraries. The Dockerfile describes the same
// image. The first build downloads (Node's npm package, the Debian packages) into the cache folder;
// the others use that cache.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  ARCHES,
  DISTROLESS_BASE,
  IMAGE,
  PACKAGES,
  imageDir,
  readLock,
  type Arch,
} from '../../scripts/image/contents.mjs';
import { all, execForm, readDockerfile } from '../../test/support/dockerfile.js';
import {
  danglingSymlinks,
  shellsAndPackageManagers,
  unexpectedExecutables,
  unownedFiles,
} from '../../test/support/image-checks.js';
import {
  buildImage,
  extractRootfs,
  mergedEntries,
  readImage,
  type BuildReport,
  type OciImage,
  type TarEntry,
} from '../../test/support/oci-image.js';
import { repoRoot } from '../../test/support/repo-root.js';

const BUILD_TIMEOUT = 900_000;
const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-image-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
/** The files the build adds that no Debian package owns. */
const ADDED = [IMAGE.node, IMAGE.bundle, IMAGE.nodeLicense, IMAGE.caBundle, ...IMAGE.rootfsFiles];

interface Built {
  first: BuildReport;
  second: BuildReport;
  image: OciImage;
  entries: Map<string, TarEntry>;
  root: string; // the image's layers extracted
}
const builds = new Map<Arch, Built>();

/** Each architecture's image, built twice in two folders the first time a test block asks. */
function built(arch: Arch): Built {
  const done = builds.get(arch);
  if (done) return done;
  const first = buildImage(arch, join(dir, `${arch}-1`));
  const second = buildImage(arch, join(dir, `${arch}-2`));
  const image = readImage(first.out);
  const root = join(dir, `${arch}-root`);
  extractRootfs(image, root);
  console.log(
    `${arch} image ${first.digest}: ${mib(first.compressedBytes)} compressed, ${mib(first.uncompressedBytes)} ` +
      `uncompressed; builds took ${first.seconds} s and ${second.seconds} s`,
  );
  const b = { first, second, image, entries: mergedEntries(image), root };
  builds.set(arch, b);
  return b;
}

describe.each(Object.keys(ARCHES) as Arch[])('the %s image', (arch) => {
  let first: BuildReport;
  let second: BuildReport;
  let image: OciImage;
  let entries: Map<string, TarEntry>;
  let root: string;
  beforeAll(() => {
    ({ first, second, image, entries, root } = built(arch));
  }, BUILD_TIMEOUT);

  test('two builds in two folders give the same digest and the same tarball', () => {
    expect(second.out).not.toBe(first.out);
    expect(second.digest).toBe(first.digest);
    expect(readFileSync(second.out).equals(readFileSync(first.out))).toBe(true);
    // The printed digest is the layout's manifest, named for containerd's import.
    expect(image.manifestDigest).toBe(first.digest);
    expect(image.index.manifests[0]?.annotations?.['io.containerd.image.name']).toBe(first.image);
    expect(image.index.manifests[0]?.platform).toEqual({
      os: 'linux',
      architecture: arch,
      variant: ARCHES[arch].variant,
    });
  });

  test('its layers are deterministic: sorted, owned by root, dated at the commit', () => {
    const created = Date.parse(image.config.created) / 1000;
    const commitTime = Number(
      execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: repoRoot, encoding: 'utf8' }),
    );
    expect(created).toBe(Number(process.env.SOURCE_DATE_EPOCH ?? commitTime));
    for (const layer of image.layers) {
      expect(layer.map((e) => e.path)).toEqual(layer.map((e) => e.path).sort());
      for (const e of layer) expect([e.path, e.uid, e.gid, e.mtime]).toEqual([e.path, 0, 0, created]);
    }
  });

  test('runs as 10001 with no shell, no package manager, no set-id file', () => {
    expect(image.config.config.User).toBe('10001:10001');
    expect(image.config.config.Entrypoint).toEqual(IMAGE.entrypoint);
    expect(shellsAndPackageManagers(entries)).toEqual([]);
    expect(unexpectedExecutables(entries, [IMAGE.node])).toEqual([]);
    expect([...entries.values()].filter((e) => (e.mode & 0o6000) !== 0).map((e) => e.path)).toEqual([]);
    const passwd = entries.get('/etc/passwd')?.data.toString() ?? '';
    expect(passwd).toMatch(/^broker:x:10001:10001:/m);
  });

  test('every file is owned by one of its Debian packages or is one the build adds', () => {
    expect(unownedFiles(entries, IMAGE.statusDir, ADDED)).toEqual([]);
    expect(danglingSymlinks(entries)).toEqual([]);
    const status = PACKAGES.map((p) => entries.get(`${IMAGE.statusDir}/${p.name}`)?.data.toString() ?? '');
    const pins = readLock().debian[arch];
    for (const [i, p] of PACKAGES.entries()) {
      const pin = pins.find((x) => x.package === p.name);
      expect(status[i]).toContain(`Package: ${p.name}\nStatus: install ok installed\n`);
      expect(status[i]).toContain(`\nVersion: ${pin?.version}\n`);
    }
    // Each package keeps its copyright (for libgcc-s1 and libstdc++6, through gcc-12-base's).
    for (const p of PACKAGES) expect(danglingSymlinks(entries)).not.toContain(`/usr/share/doc/${p.name}`);
  });

  test(`node and every library are ${arch} ELF files, and node's loader and libraries are in the image`, () => {
    const readelf = (...args: string[]) => execFileSync('readelf', args, { encoding: 'utf8' });
    const node = join(root, IMAGE.node);
    expect(readelf('-l', node)).toContain(`[Requesting program interpreter: ${ARCHES[arch].loader}]`);
    const elfs = [...entries.values()].filter(
      (e) => e.type === 'file' && e.data.subarray(0, 4).toString('latin1') === '\x7fELF',
    );
    expect(elfs.length).toBeGreaterThan(10);
    for (const e of elfs)
      expect([e.path, e.data.readUInt16LE(18)]).toEqual([e.path, ARCHES[arch].elfMachine]);
    const needed = [...readelf('-d', node).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map(
      (m) => m[1],
    );
    expect(needed).toContain('libstdc++.so.6');
    const libDirs = [`/lib/${ARCHES[arch].triplet}`, `/usr/lib/${ARCHES[arch].triplet}`];
    for (const lib of needed)
      expect([lib, libDirs.some((d) => entries.has(`${d}/${lib}`))]).toEqual([lib, true]);
    expect(entries.has(ARCHES[arch].loader)).toBe(true);
  });
});

describe('the amd64 image runs', () => {
  let image: OciImage;
  let root: string;
  beforeAll(() => {
    ({ image, root } = built('amd64'));
  }, BUILD_TIMEOUT);

  test("the broker starts from the image's root filesystem with only the image's libraries", () => {
    const { triplet, loader } = ARCHES.amd64;
    const libraryPath = [`${root}/lib/${triplet}`, `${root}/usr/lib/${triplet}`].join(':');
    // The image's own loader, told to look in the image first; LD_DEBUG=libs names each library it
    // loads, so one taken from this machine instead would show.
    const r = spawnSync(
      join(root, loader),
      [
        '--inhibit-cache',
        '--library-path',
        libraryPath,
        join(root, IMAGE.node),
        join(root, IMAGE.bundle),
        '--help',
      ],
      { encoding: 'utf8', env: { LD_DEBUG: 'libs' } },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('usage: node index.js <command>');
    const loaded = [...r.stderr.matchAll(/calling init: (\S+)/g)].map((m) => m[1] ?? '');
    expect(loaded.length).toBeGreaterThanOrEqual(5);
    expect(loaded.filter((p) => !p.startsWith(`${root}/`))).toEqual([]);
  });

  const asRoot = process.getuid?.() === 0;
  (asRoot ? test : test.skip)(
    'chrooted into the image, as its user, the entrypoint starts (root only)',
    () => {
      const [uid, gid] = image.config.config.User.split(':');
      const r = spawnSync(
        'chroot',
        [`--userspec=${uid}:${gid}`, root, ...image.config.config.Entrypoint, '--help'],
        {
          encoding: 'utf8',
          env: Object.fromEntries(image.config.config.Env.map((kv) => kv.split(/=(.*)/s).slice(0, 2))),
        },
      );
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toContain('(in the image: /app/index.js)');
    },
  );
});

/** A qemu-user emulator for arm64 on the PATH (Debian: qemu-user-static), or undefined. */
const qemuAarch64 = (process.env.PATH ?? '')
  .split(':')
  .flatMap((d) => ['qemu-aarch64-static', 'qemu-aarch64'].map((b) => join(d, b)))
  .find((f) => existsSync(f));

describe('the arm64 image runs', () => {
  let root: string;
  beforeAll(() => {
    ({ root } = built('arm64'));
  }, BUILD_TIMEOUT);

  // Without an emulator the arm64 image cannot run here: its ELF checks above are what remains.
  (qemuAarch64 ? test : test.skip)(
    "under qemu-user, the broker starts with only the image's libraries",
    () => {
      // qemu's -L makes the image's root the prefix of the loader's and the libraries' paths.
      const r = spawnSync(
        qemuAarch64 ?? '',
        ['-L', root, join(root, IMAGE.node), join(root, IMAGE.bundle), '--help'],
        {
          encoding: 'utf8',
          env: {},
        },
      );
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toContain('usage: node index.js <command>');
    },
  );
});

describe('the Dockerfile describes the same image', () => {
  const stages = readDockerfile(join(repoRoot, 'Dockerfile'));
  const final = stages.at(-1)!;
  let image: OciImage;
  let entries: Map<string, TarEntry>;
  beforeAll(() => {
    ({ image, entries } = built('amd64'));
  }, BUILD_TIMEOUT);

  test('same distroless Debian base and the same Node version', () => {
    expect(final.from).toBe(DISTROLESS_BASE.image);
    expect(stages[0]?.from).toBe(`node:${readLock().node.version}-bookworm-slim`);
    expect(image.layers[0]?.some((e) => e.path === '/etc/debian_version')).toBe(true);
    expect(entries.get('/etc/debian_version')?.data.toString()).toMatch(/^12\./);
  });

  test('same user, entrypoint, command, working directory, environment and port', () => {
    const c = image.config.config;
    expect(all(final, 'USER').at(-1)).toBe(c.User);
    expect(execForm(final, 'ENTRYPOINT')).toEqual(c.Entrypoint);
    expect(execForm(final, 'CMD')).toEqual(c.Cmd);
    expect(all(final, 'WORKDIR').at(-1)).toBe(c.WorkingDir);
    expect([...DISTROLESS_BASE.env, ...all(final, 'ENV')]).toEqual(c.Env);
    expect(
      all(final, 'EXPOSE').flatMap((p) => p.split(/\s+/).map((x) => (x.includes('/') ? x : `${x}/tcp`))),
    ).toEqual(Object.keys(c.ExposedPorts as object));
  });

  test('same files at the same paths: what the Dockerfile copies is in the image', () => {
    const copies = all(final, 'COPY').map((a) => a.split(/\s+/).filter((w) => !w.startsWith('--')));
    const fromRepo = copies.filter(
      (c) => !all(final, 'COPY').some((a) => a.includes('--from') && a.endsWith(c.at(-1)!)),
    );
    const destinations = copies.flatMap((c) =>
      c.at(-1)!.endsWith('/') ? c.slice(0, -1).map((s) => c.at(-1)! + s.split('/').at(-1)) : [c.at(-1)!],
    );
    expect(destinations.sort()).toEqual([IMAGE.bundle, ...IMAGE.rootfsFiles, IMAGE.node].sort());
    for (const d of destinations) expect([d, entries.get(d)?.type]).toEqual([d, 'file']);
    // The files it copies from this repository are the image's, byte for byte.
    for (const c of fromRepo)
      for (const src of c.slice(0, -1))
        expect(
          entries.get(`/etc/${src.split('/').at(-1)}`)?.data.equals(readFileSync(join(repoRoot, src))),
        ).toBe(true);
    expect(imageDir).toBe(join(repoRoot, 'scripts/image'));
  });
});
