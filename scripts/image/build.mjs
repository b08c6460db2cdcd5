// The broker image, built without a container engine: Debian's runtime libraries for Node, Node's
// official build, the broker bundle, assembled by ocibuild (go-containerregistry) into an OCI image
// layout tarball that `ctr images import` and OCI tools read. The same commit gives the same digest.
//
//   npm run image -- [--arch amd64|arm64] [--out FILE] [--version V] [--source URL] [--json]
//   npm run image -- --update-lock [--node VERSION]   re-pin Node and the Debian packages (network)
//
// Downloads are cached under $K8S_EA_CACHE/image (default .cache/image), keyed by their checksums;
// a build whose downloads are cached needs no network.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { load as loadYaml } from 'js-yaml';
import { ARCHES, LOCK_FILE, imageDir, readLock } from './contents.mjs';
import { updateLock } from './update-lock.mjs';
import { nodeTarball } from './node-package.mjs';
import { ensureOcibuild, imageCache, runOcibuild } from './ocibuild.mjs';
import { makePlan } from './plan.mjs';
import { provenance } from './provenance.mjs';

const repo = resolve(imageDir, '../..');
const chartValues = join(repo, 'deploy/chart/k8s-ephemeral-access/values.yaml');

const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'amd64' },
    out: { type: 'string' },
    work: { type: 'string' },
    version: { type: 'string' },
    source: { type: 'string' },
    json: { type: 'boolean', default: false },
    'update-lock': { type: 'boolean', default: false },
    node: { type: 'string' },
  },
});

const cache = imageCache();
const log = (line) => (args.json ? process.stderr : process.stdout).write(`${line}\n`);
const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** Stops in the first second when a tool every build needs is missing, naming what installs it. */
function checkTools() {
  const need = { go: 'Go 1.26+ (https://go.dev/dl/)', 'dpkg-deb': 'apt-get install dpkg' };
  for (const [tool, install] of Object.entries(need)) {
    const found = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (found.error) throw new Error(`${tool} is missing: ${install}`);
  }
}

async function build(arch) {
  const started = Date.now();
  checkTools();
  const lock = readLock();
  const origin = provenance(repo, { version: args.version, source: args.source });
  execFileSync(process.execPath, [join(repo, 'scripts/build.mjs'), 'broker'], { cwd: repo, stdio: 'ignore' });
  const repository = /** @type {any} */ (loadYaml(readFileSync(chartValues, 'utf8'))).image.repository;
  const out = resolve(args.out ?? join(repo, 'build/image', `broker-${origin.version}-${arch}.oci.tar`));
  mkdirSync(dirname(out), { recursive: true });
  const work = args.work ? resolve(args.work) : mkdtempSync(join(tmpdir(), 'k8s-ea-image-'));
  try {
    const plan = makePlan({
      cache,
      arch,
      lock,
      nodeTarball: await nodeTarball(cache, lock.node[arch]),
      bundle: join(repo, 'build/broker/index.js'),
      work,
      out,
      repository,
      origin,
    });
    const planFile = join(work, 'plan.json');
    writeFileSync(planFile, JSON.stringify(plan, null, 2));
    const report = runOcibuild(ensureOcibuild(cache), planFile);
    const result = {
      ...report,
      image: plan.imageName,
      platform: `linux/${arch}`,
      seconds: (Date.now() - started) / 1000,
    };
    if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    log(`${plan.imageName} (linux/${arch}) ${report.digest}`);
    log(
      `  ${mib(report.compressedBytes)} compressed, ${mib(report.uncompressedBytes)} uncompressed, ${report.layers} layers`,
    );
    log(`  ${out} (in ${result.seconds.toFixed(1)} s)`);
  } finally {
    if (!args.work) rmSync(work, { recursive: true, force: true });
  }
}

try {
  if (args['update-lock']) {
    await updateLock(cache, LOCK_FILE, args.node);
    log(`updated ${LOCK_FILE}`);
  } else {
    if (!(args.arch in ARCHES)) throw new Error(`--arch must be one of ${Object.keys(ARCHES).join(', ')}`);
    await build(/** @type {'amd64' | 'arm64'} */ (args.arch));
  }
} catch (err) {
  console.error(`image: ${err.message}`);
  process.exit(1);
}
