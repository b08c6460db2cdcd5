// Reads an OCI image layout tarball as scripts/image/build.mjs writes it: builds one, reads its
// index, manifest, config and each layer's entries (with their tar metadata), and extracts the root
// filesystem with the system's tar, for the tests of the image.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { repoRoot } from './repo-root.js';

export interface BuildReport {
  digest: string;
  compressedBytes: number;
  uncompressedBytes: number;
  layers: number;
  out: string;
  image: string;
  platform: string;
  seconds: number;
}

/** Runs the one command (`npm run image`'s script) into `dir`, with its own work folder. */
export function buildImage(arch: 'amd64' | 'arm64', dir: string): BuildReport {
  mkdirSync(dir, { recursive: true });
  const args = ['scripts/image/build.mjs', '--arch', arch, '--json'];
  args.push('--out', join(dir, `broker-${arch}.oci.tar`), '--work', join(dir, 'work'));
  const out = execFileSync(process.execPath, args, {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as BuildReport;
}

export interface TarEntry {
  path: string; // absolute, no trailing slash
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
  data: Buffer;
}

const field = (h: Buffer, start: number, len: number) =>
  h
    .subarray(start, start + len)
    .toString('utf8')
    .replace(/\0.*$/s, '');
const octal = (h: Buffer, start: number, len: number) => parseInt(field(h, start, len).trim() || '0', 8);

/** PAX extended header records ("<len> key=value\n"). */
function paxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let rest = data.toString('utf8');
  while (rest.length > 0) {
    const len = parseInt(rest, 10);
    const record = rest.slice(0, len);
    const eq = record.indexOf('=');
    records[record.slice(record.indexOf(' ') + 1, eq)] = record.slice(eq + 1, -1);
    rest = rest.slice(len);
  }
  return records;
}

const typeOf = (flag: string): TarEntry['type'] =>
  flag === '0' || flag === '' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : 'other';

/** The entries of a tar (ustar or PAX, as Go's archive/tar writes them). */
export function readTar(tar: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let pax: Record<string, string> = {};
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = octal(h, 124, 12);
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    const flag = field(h, 156, 1);
    if (flag === 'x') {
      pax = paxRecords(data);
      continue;
    }
    const prefix = field(h, 345, 155);
    const name = pax.path ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    entries.push({
      path: `/${name}`.replace(/\/+$/, '').replace(/^\/\.\//, '/'),
      type: typeOf(flag),
      mode: octal(h, 100, 8),
      uid: octal(h, 108, 8),
      gid: octal(h, 116, 8),
      mtime: octal(h, 136, 12),
      linkname: pax.linkpath ?? field(h, 157, 100),
      data: Buffer.from(data),
    });
    pax = {};
  }
  return entries;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface OciImage {
  files: Map<string, Buffer>; // the layout's files: oci-layout, index.json, blobs/sha256/...
  index: { manifests: Descriptor[] };
  manifest: { config: Descriptor; layers: Descriptor[] };
  manifestDigest: string;
  config: {
    architecture: string;
    variant?: string;
    os: string;
    created: string;
    config: Record<string, unknown> & { User: string; Env: string[]; Entrypoint: string[]; Cmd: string[] };
    rootfs: { diff_ids: string[] };
  };
  layers: TarEntry[][];
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Reads a layout tarball; every blob it uses must match its digest. */
export function readImage(tarFile: string): OciImage {
  const files = new Map(readTar(readFileSync(tarFile)).map((e) => [e.path.slice(1), e.data]));
  const blob = (d: Descriptor) => {
    const data = files.get(`blobs/sha256/${d.digest.slice('sha256:'.length)}`);
    if (!data) throw new Error(`blob ${d.digest} missing from ${tarFile}`);
    if (sha256(data) !== d.digest || data.length !== d.size)
      throw new Error(`blob ${d.digest} does not match`);
    return data;
  };
  const index = JSON.parse(files.get('index.json')?.toString() ?? '{}') as OciImage['index'];
  const [top] = index.manifests;
  if (!top || index.manifests.length !== 1) throw new Error('index.json must name exactly one image');
  const manifest = JSON.parse(blob(top).toString()) as OciImage['manifest'];
  const config = JSON.parse(blob(manifest.config).toString()) as OciImage['config'];
  const layers = manifest.layers.map((l, i) => {
    const tar = gunzipSync(blob(l));
    if (sha256(tar) !== config.rootfs.diff_ids[i]) throw new Error(`layer ${i}: diff_id does not match`);
    return readTar(tar);
  });
  return { files, index, manifest, manifestDigest: top.digest, config, layers };
}

/** The image's file system: the layers' entries by path, later layers over earlier ones. */
export function mergedEntries(image: OciImage): Map<string, TarEntry> {
  return new Map(image.layers.flat().map((e) => [e.path, e]));
}

/** Extracts the layers, in order, into `root` with the system's tar. */
export function extractRootfs(image: OciImage, root: string): void {
  mkdirSync(root, { recursive: true });
  for (const l of image.manifest.layers) {
    const blob = image.files.get(`blobs/sha256/${l.digest.slice('sha256:'.length)}`) as Buffer;
    execFileSync('tar', ['-xzf', '-', '-C', root], { input: blob });
  }
}
