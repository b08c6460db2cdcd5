// Debian packages for the image, through apt with a private root per architecture (its own sources,
// index and state under the cache folder: the host's own apt setup and architectures are not
// touched; its apt.conf.d, e.g. a proxy, still applies). apt checks the index's signature with
// Debian's archive keyring and each download against the index; here each .deb is also checked
// against the SHA256 pinned in lock.json, and cached under that checksum.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN } from './contents.mjs';

/** @typedef {{ package: string, version: string, architecture: string, filename: string, size: number, sha256: string }} DebPin */

export const sha256File = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The apt options of the private root for `arch`, creating its folders and sources. */
function aptOptions(cache, arch) {
  const root = join(cache, `apt-${arch}`);
  for (const dir of ['state/lists/partial', 'cache/archives/partial', 'empty'])
    mkdirSync(join(root, dir), { recursive: true });
  const sources = DEBIAN.sources.map((s) => `deb [signed-by=${DEBIAN.keyring}] ${s}\n`).join('');
  writeFileSync(join(root, 'sources.list'), sources);
  if (!existsSync(join(root, 'status'))) writeFileSync(join(root, 'status'), '');
  const o = {
    'Dir::Etc::SourceList': join(root, 'sources.list'),
    'Dir::Etc::SourceParts': join(root, 'empty'),
    'Dir::State': join(root, 'state'),
    'Dir::State::status': join(root, 'status'),
    'Dir::Cache': join(root, 'cache'),
    'APT::Architecture': arch,
    'APT::Architectures::': arch,
    'Acquire::Languages': 'none',
    'Acquire::GzipIndexes': 'false',
    'Acquire::IndexTargets::deb::DEP-11::DefaultEnabled': 'false',
    'APT::Sandbox::User': 'root',
  };
  return { root, args: Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`]) };
}

const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Fetches Debian's signed index for `arch` into the private root (needs the network). */
export function updateIndex(cache, arch) {
  if (!existsSync(DEBIAN.keyring))
    throw new Error(`${DEBIAN.keyring} is missing: install the debian-archive-keyring package`);
  const { args } = aptOptions(cache, arch);
  run('apt-get', [...args, '-q', 'update']);
}

/** Parses `apt-cache show` stanzas into pins. */
function parseStanzas(text) {
  return text
    .split(/\n\n+/)
    .filter((s) => s.trim())
    .map((stanza) => {
      const field = (name) => stanza.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1] ?? '';
      return {
        package: field('Package'),
        version: field('Version'),
        architecture: field('Architecture'),
        filename: field('Filename'),
        size: Number(field('Size')),
        sha256: field('SHA256'),
      };
    });
}

/** The candidate (newest) version of each package in the index, as pins for lock.json. */
export function resolvePins(cache, arch, names) {
  const { args } = aptOptions(cache, arch);
  const pins = parseStanzas(run('apt-cache', [...args, 'show', '--no-all-versions', ...names]));
  for (const name of names)
    if (!pins.some((p) => p.package === name)) throw new Error(`${name} is not in Debian's ${arch} index`);
  return pins;
}

/** What the index says of one pinned version, or undefined when the index no longer has it. */
function indexEntry(args, pin, arch) {
  try {
    return parseStanzas(run('apt-cache', [...args, 'show', `${pin.package}:${arch}=${pin.version}`]))[0];
  } catch {
    return undefined;
  }
}

/**
 * The .deb of a pin, from the cache (by SHA256) or downloaded with apt-get; its checksum must match
 * the pin, and (when downloaded) the index's entry must match the pin too.
 * @param {string} cache @param {string} arch @param {DebPin} pin
 */
export function debFile(cache, arch, pin) {
  const debs = join(cache, 'debs');
  const file = join(debs, `${pin.sha256}.deb`);
  if (existsSync(file) && sha256File(file) === pin.sha256) return file;
  const { args } = aptOptions(cache, arch);
  let entry = indexEntry(args, pin, arch);
  if (!entry) {
    updateIndex(cache, arch);
    entry = indexEntry(args, pin, arch);
  }
  if (!entry)
    throw new Error(
      `${pin.package} ${pin.version} (${arch}) is no longer in Debian's index (a newer version replaced it): ` +
        'run `npm run image -- --update-lock` and commit scripts/image/lock.json',
    );
  if (entry.sha256 !== pin.sha256)
    throw new Error(
      `${pin.package} ${pin.version}: the index says SHA256 ${entry.sha256}, lock.json ${pin.sha256}`,
    );
  const tmp = join(debs, `.download-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run('apt-get', [...args, '-q', 'download', `${pin.package}:${arch}=${pin.version}`], tmp);
  const [got] = readdirSync(tmp);
  if (!got) throw new Error(`apt-get download ${pin.package} gave no file`);
  const sum = sha256File(join(tmp, got));
  if (sum !== pin.sha256) throw new Error(`${got}: SHA256 ${sum}, expected ${pin.sha256} (lock.json)`);
  renameSync(join(tmp, got), file);
  rmSync(tmp, { recursive: true, force: true });
  return file;
}

/** The package's data as a tar file (what ocibuild reads) and its control stanza. */
export function unpackDeb(deb, into) {
  const tar = execFileSync('dpkg-deb', ['--fsys-tarfile', deb], { maxBuffer: 1 << 30 });
  writeFileSync(into, tar);
  return { tar: into, control: run('dpkg-deb', ['-f', deb]) };
}
