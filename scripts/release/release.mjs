// The release's build and publish steps, one script for the release workflow (.github/workflows/release.yml)
// and for its dry run in CI (`node scripts/release/release.mjs dry-run`, in .ci/run), so the dry run
// proves what the release does:
//   build   --out D            both broker images (the engine-free image build, per architecture), their
//                              SPDX SBOMs (sbom.mjs, from the build's inputs), and the checks: uid 10001,
//                              an entrypoint, no shell, every Debian package that owns files in the image
//                              listed in the SBOM
//   push    --out D --image I --version V     each image by digest, then one index tagged V (crane)
//   chart   --out D --image I --version V --image-digest S [--push oci://R]   the chart, its image pinned
//                              by digest, packaged (and pushed) (helm)
//   dry-run --out D            build twice (the same digests or it fails) and package the chart; no push
// Outputs for the workflow go to $GITHUB_OUTPUT (digest=, name=). Registry credentials: REGISTRY_USER
// (default: the workflow's actor) and REGISTRY_PASSWORD, passed on stdin, never on a command line.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureGoTool, repoRoot } from '../go-tool.mjs';
import { readLock } from '../image/contents.mjs';
import { provenance } from '../image/provenance.mjs';
import { imageProblems, readImageArchive } from './oci-archive.mjs';
import { imageSbom } from './sbom.mjs';

export const ARCHES = ['amd64', 'arm64'];
/** The engine-free image build (owned by the image work; its CLI: --arch A --out F, prints the digest). */
export const IMAGE_BUILD = join('scripts', 'image', 'build.mjs');
const CHART = join(repoRoot, 'deploy', 'chart', 'k8s-ephemeral-access');
/** Which npm packages the image build bundled into the broker (written by scripts/build.mjs broker). */
const BUNDLE_META = join(repoRoot, 'build', 'broker', 'meta.json');
/** Packages the broker cannot run without: an SBOM that lacks them was written from the wrong bundle. */
const BUNDLED_AT_LEAST = ['@kubernetes/client-node', 'jose', 'js-yaml', 'prom-client', 'undici'];

/**
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ input?: string, quiet?: boolean }} [o]
 */
function run(cmd, args, o = {}) {
  const r = spawnSync(cmd, args, {
    cwd: repoRoot,
    encoding: 'utf8',
    input: o.input,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', o.quiet ? 'pipe' : 'inherit'],
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0] ?? ''} failed (${r.status}): ${r.stderr ?? ''}`);
  return r.stdout;
}

const digestIn = (text) => {
  const m = [...String(text).matchAll(/sha256:[0-9a-f]{64}/g)].pop();
  if (!m) throw new Error(`no sha256 digest in: ${text}`);
  return m[0];
};

function output(name, value) {
  console.log(`${name}=${value}`);
  if (process.env.GITHUB_OUTPUT) appendFileSync(process.env.GITHUB_OUTPUT, `${name}=${value}\n`);
}

/** One image: its archive in `out` and its digest. */
function buildImage(arch, out) {
  if (!existsSync(join(repoRoot, IMAGE_BUILD)))
    throw new Error(
      `${IMAGE_BUILD} (the engine-free image build the tests and the release share) is missing`,
    );
  const file = join(out, `image-${arch}.tar`);
  const digest = digestIn(run(process.execPath, [IMAGE_BUILD, '--arch', arch, '--out', file]));
  return { arch, file, digest };
}

/** The SBOM of one image (from the build's inputs), and the packages owning files in the image it misses. */
function sbom(image, out, imageName) {
  const file = join(out, `sbom-${image.arch}.spdx.json`);
  const doc = imageSbom({
    arch: image.arch,
    imageName,
    imageDigest: image.digest,
    version,
    created: provenance(repoRoot).created,
    lock: readLock(),
    bundleInputs: Object.keys(JSON.parse(readFileSync(BUNDLE_META, 'utf8')).inputs),
    packageLock: JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')),
  });
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  const names = new Set(doc.packages.map((p) => p.name));
  const contents = readImageArchive(image.file);
  const missing = contents.dpkg.filter((p) => !names.has(p));
  for (const needed of ['node', ...BUNDLED_AT_LEAST]) if (!names.has(needed)) missing.push(needed);
  return { file, packages: doc.packages.length - 1, missing, problems: imageProblems(contents) };
}

function build(out, { twice, imageName }) {
  mkdirSync(out, { recursive: true });
  const images = ARCHES.map((arch) => buildImage(arch, out));
  if (twice) {
    const again = mkdtempSync(join(tmpdir(), 'k8s-ea-rebuild-'));
    try {
      for (const [i, arch] of ARCHES.entries()) {
        const second = buildImage(arch, again);
        const first = images[i]?.digest;
        if (second.digest !== first)
          throw new Error(`linux/${arch}: not reproducible: ${first}, then ${second.digest}`);
        console.log(`linux/${arch}: ${second.digest} on both builds`);
      }
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  }
  for (const image of images) {
    const s = sbom(image, out, imageName);
    if (s.problems.length > 0 || s.missing.length > 0)
      throw new Error(
        `linux/${image.arch}: ${[...s.problems, ...(s.missing.length ? [`SBOM misses ${s.missing.join(', ')}`] : [])].join('; ')}`,
      );
    console.log(`linux/${image.arch}: ${image.digest}, uid 10001, no shell, SBOM ${s.packages} packages`);
  }
  writeFileSync(join(out, 'images.json'), JSON.stringify(images, null, 2));
  if (images[0]) cpSync(join(out, `sbom-${images[0].arch}.spdx.json`), join(out, 'sbom.spdx.json'));
  return images;
}

function login(host) {
  const password = process.env.REGISTRY_PASSWORD;
  if (!password) throw new Error('REGISTRY_PASSWORD is not set');
  return { user: process.env.REGISTRY_USER ?? process.env.GITHUB_ACTOR ?? 'release', password, host };
}

function push(out, image, version) {
  const crane = ensureGoTool('crane');
  const { user, password, host } = login(image.split('/')[0]);
  run(crane, ['auth', 'login', host, '-u', user, '--password-stdin'], { input: password, quiet: true });
  const images = JSON.parse(readFileSync(join(out, 'images.json'), 'utf8'));
  const refs = images.map((i) => {
    const pushed = digestIn(run(crane, ['push', i.file, `${image}@${i.digest}`]));
    if (pushed !== i.digest) throw new Error(`pushed ${pushed}, built ${i.digest}`);
    return `${image}@${i.digest}`;
  });
  const index = digestIn(
    run(crane, ['index', 'append', ...refs.flatMap((r) => ['-m', r]), '-t', `${image}:${version}`]),
  );
  output('digest', index);
}

function chart(out, { image, version, imageDigest, pushTo }) {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-chart-'));
  try {
    const copy = join(dir, 'k8s-ephemeral-access');
    cpSync(CHART, copy, { recursive: true });
    const chartYaml = join(copy, 'Chart.yaml');
    writeFileSync(
      chartYaml,
      readFileSync(chartYaml, 'utf8')
        .replace(/^version: .*$/m, `version: ${version}`)
        .replace(/^appVersion: .*$/m, `appVersion: ${version}`),
    );
    const values = join(copy, 'values.yaml');
    const text = readFileSync(values, 'utf8');
    const pinned = text
      .replace(/^( {2}repository: ).*$/m, `$1${image}`)
      .replace(/^( {2}digest: ).*$/m, `$1'${imageDigest ?? ''}'`);
    if (imageDigest && !pinned.includes(imageDigest))
      throw new Error('values.yaml has no image.digest to pin');
    writeFileSync(values, pinned);
    const helm = ensureGoTool('helm');
    run(helm, ['lint', '--strict', copy], { quiet: true });
    mkdirSync(out, { recursive: true });
    run(helm, ['package', copy, '-d', out], { quiet: true });
    const pkg = join(out, `k8s-ephemeral-access-${version}.tgz`);
    console.log(`chart: ${pkg}`);
    if (!pushTo) return;
    const { user, password, host } = login(pushTo.replace(/^oci:\/\//, '').split('/')[0]);
    run(helm, ['registry', 'login', host, '-u', user, '--password-stdin'], { input: password, quiet: true });
    const r = spawnSync(helm, ['push', pkg, pushTo], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`helm push failed: ${r.stderr}`);
    output('digest', digestIn(`${r.stdout}${r.stderr}`));
    output('name', `${pushTo.replace(/^oci:\/\//, '')}/k8s-ephemeral-access`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: 'release-out' },
    image: { type: 'string', default: 'ghcr.io/k8s-ephemeral-access/broker' },
    version: { type: 'string' },
    'image-digest': { type: 'string' },
    push: { type: 'string' },
  },
});
const out = resolve(repoRoot, o.out ?? 'release-out');
const version = o.version ?? JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;
try {
  switch (positionals[0]) {
    case 'build':
      build(out, { twice: false, imageName: o.image });
      break;
    case 'push':
      push(out, /** @type {string} */ (o.image), version);
      break;
    case 'chart':
      chart(out, { image: o.image, version, imageDigest: o['image-digest'], pushTo: o.push });
      break;
    case 'dry-run': {
      const images = build(out, { twice: true, imageName: o.image });
      chart(out, { image: o.image, version, imageDigest: images[0]?.digest, pushTo: undefined });
      console.log('release dry run: both images reproducible and checked, SBOMs complete, chart packaged');
      break;
    }
    default:
      throw new Error('usage: release.mjs build|push|chart|dry-run [--out D] [--image I] [--version V]');
  }
} catch (err) {
  console.error(`release: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
