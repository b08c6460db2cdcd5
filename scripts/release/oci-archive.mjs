// Reads an image archive as the image build writes it (an OCI image layout as a tar file, or a Docker-style
// tarball): its config and the paths in its layers, and the Debian packages whose files it holds. The
// release checks (release.mjs) use it on what they are about to push: the user, the entrypoint, no shell.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Paths of a shell or of a tool that is one: an image holding any of them is refused. */
export const SHELL_PATH =
  /(^|\/)(bin|sbin|usr\/bin|usr\/sbin|usr\/local\/bin)\/(sh|bash|dash|ash|zsh|ksh|busybox)$/;

/** @param {string[]} args */
function tar(args) {
  const r = spawnSync('tar', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * @param {string} archive
 * @returns {{ config: any, files: string[], dpkg: string[] }}
 */
export function readImageArchive(archive) {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-image-'));
  try {
    tar(['-xf', archive, '-C', dir]);
    const blob = (digest) => join(dir, 'blobs', ...String(digest).split(':'));
    let configPath;
    /** @type {string[]} */
    let layers;
    if (existsSync(join(dir, 'index.json'))) {
      let entry = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')).manifests[0];
      let manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8'));
      // A one-platform index inside the layout: its manifest.
      if (manifest.manifests) {
        entry = manifest.manifests[0];
        manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8'));
      }
      configPath = blob(manifest.config.digest);
      layers = manifest.layers.map((l) => blob(l.digest));
    } else {
      const [m] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      configPath = join(dir, m.Config);
      layers = m.Layers.map((l) => join(dir, l));
    }
    const files = layers.flatMap((l) =>
      tar(['-tf', l])
        .split('\n')
        .filter(Boolean)
        .map((p) => p.replace(/^\.?\//, '')),
    );
    const root = join(dir, 'rootfs');
    spawnSync('mkdir', ['-p', root]);
    for (const l of layers) spawnSync('tar', ['-xf', l, '-C', root, 'var/lib/dpkg'], { encoding: 'utf8' });
    return { config: JSON.parse(readFileSync(configPath, 'utf8')), files, dpkg: dpkgPackages(root) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Package names from var/lib/dpkg/status and status.d/* (distroless keeps one file per package). */
function dpkgPackages(root) {
  const texts = [];
  const status = join(root, 'var/lib/dpkg/status');
  if (existsSync(status)) texts.push(readFileSync(status, 'utf8'));
  const dir = join(root, 'var/lib/dpkg/status.d');
  if (existsSync(dir))
    for (const f of readdirSync(dir))
      if (!f.endsWith('.md5sums')) texts.push(readFileSync(join(dir, f), 'utf8'));
  return [
    ...new Set(texts.flatMap((t) => [...t.matchAll(/^Package:\s*(\S+)/gm)].map((m) => String(m[1])))),
  ].sort();
}

/**
 * What is wrong with the image's config and files, as sentences (empty: fine): it runs as uid 10001,
 * has an entrypoint, and holds no shell.
 * @param {{ config: any, files: string[] }} image
 */
export function imageProblems(image) {
  const c = image.config.config ?? {};
  const problems = [];
  if (!['10001', '10001:10001'].includes(String(c.User ?? '')))
    problems.push(`runs as "${c.User ?? ''}", not 10001`);
  if (!Array.isArray(c.Entrypoint) || c.Entrypoint.length === 0) problems.push('has no entrypoint');
  const shells = image.files.filter((f) => SHELL_PATH.test(f));
  if (shells.length > 0) problems.push(`holds a shell: ${shells.join(', ')}`);
  return problems;
}
