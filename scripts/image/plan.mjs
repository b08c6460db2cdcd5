// The plan ocibuild follows (ocibuild/plan.go): three layers (the Debian runtime, Node, the broker
// bundle) and the image config. Every file's source and mode is chosen here.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHES, DOC_EXCEPTIONS, IMAGE, PACKAGES, imageDir } from './contents.mjs';
import { debFile, unpackDeb } from './debian.mjs';

/** A dpkg status entry: the package's control fields, marked installed (what SBOM tools read). */
const statusEntry = (control) => control.replace(/^(Package: .*\n)/, '$1Status: install ok installed\n');

/**
 * The CA bundle as update-ca-certificates writes it: every Mozilla root of the package, by name.
 * @param {string} deb @param {string} dir
 */
function caBundle(deb, dir) {
  execFileSync('dpkg-deb', ['-x', deb, dir]);
  const certs = join(dir, 'usr/share/ca-certificates/mozilla');
  const names = readdirSync(certs)
    .filter((f) => f.endsWith('.crt'))
    .sort();
  if (names.length < 100) throw new Error(`only ${names.length} certificates in ${deb}`);
  return names
    .map((f) => readFileSync(join(certs, f), 'utf8'))
    .map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`))
    .join('');
}

/** The Debian layer's entries: each package's files, status entry and file list, and the CA bundle. */
function debianEntries(cache, arch, pins, work) {
  const { triplet } = ARCHES[arch];
  const entries = [];
  for (const p of PACKAGES) {
    const pin = pins.find((x) => x.package === p.name);
    if (!pin) throw new Error(`lock.json has no ${arch} pin of ${p.name}: run --update-lock`);
    const deb = debFile(cache, arch, pin);
    const { tar, control } = unpackDeb(deb, join(work, `${p.name}.tar`));
    const md5sums = `${IMAGE.statusDir}/${p.name}.md5sums`;
    entries.push({ tar, include: p.include, exclude: p.exclude?.(triplet), keep: DOC_EXCEPTIONS, md5sums });
    entries.push({ text: statusEntry(control), path: `${IMAGE.statusDir}/${p.name}`, mode: 0o644 });
    if (p.name === 'ca-certificates')
      entries.push({ text: caBundle(deb, join(work, 'ca')), path: IMAGE.caBundle, mode: 0o644 });
  }
  for (const f of IMAGE.rootfsFiles)
    entries.push({ file: join(imageDir, 'rootfs', f), path: f, mode: 0o644 });
  return entries;
}

/** The Node layer: the binary and its licence from the npm package. */
const nodeEntries = (tarball) => [
  {
    tar: tarball,
    strip: '/package',
    include: ['/bin/node', '/LICENSE'],
    rename: { '/bin/node': IMAGE.node, '/LICENSE': IMAGE.nodeLicense },
  },
];

/**
 * @param {{ cache: string, arch: 'amd64' | 'arm64', lock: any, nodeTarball: string, bundle: string,
 *   work: string, out: string, repository: string, origin: { created: string, revision: string,
 *   version: string, source: string } }} o
 */
export function makePlan(o) {
  mkdirSync(o.work, { recursive: true });
  const labels = {
    'org.opencontainers.image.title': 'k8s-ephemeral-access broker',
    'org.opencontainers.image.version': o.origin.version,
    'org.opencontainers.image.revision': o.origin.revision,
    'org.opencontainers.image.created': o.origin.created,
    'org.opencontainers.image.licenses': 'MIT',
    ...(o.origin.source ? { 'org.opencontainers.image.source': o.origin.source } : {}),
  };
  const nodeVersion = o.lock.node.version;
  return {
    architecture: o.arch,
    variant: ARCHES[o.arch].variant,
    created: o.origin.created,
    layers: [
      {
        createdBy: `debian bookworm: ${PACKAGES.map((p) => p.name).join(' ')}`,
        entries: debianEntries(o.cache, o.arch, o.lock.debian[o.arch], o.work),
      },
      {
        createdBy: `node ${nodeVersion} (${ARCHES[o.arch].npmPackage})`,
        entries: nodeEntries(o.nodeTarball),
      },
      {
        createdBy: 'broker bundle (npm run build:broker)',
        entries: [{ file: o.bundle, path: IMAGE.bundle, mode: 0o644 }],
      },
    ],
    config: {
      user: IMAGE.user,
      entrypoint: IMAGE.entrypoint,
      cmd: IMAGE.cmd,
      env: IMAGE.env,
      workingDir: IMAGE.workingDir,
      exposedPorts: IMAGE.exposedPorts,
      labels,
    },
    imageName: `${o.repository}:${o.origin.version}`,
    tag: o.origin.version,
    out: o.out,
    workDir: join(o.work, 'oci'),
  };
}
