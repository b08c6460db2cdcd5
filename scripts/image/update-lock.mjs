// `npm run image -- --update-lock`: re-pins what the image is built from, into lock.json: the newest
// version of each Debian package in Debian's signed index (with its SHA256), and Node (the given
// version, or the pinned one) with its integrity from the npm registry, for every architecture.
import { writeFileSync } from 'node:fs';
import { ARCHES, PACKAGES, readLock } from './contents.mjs';
import { resolvePins, updateIndex } from './debian.mjs';
import { registryPin } from './node-package.mjs';

export async function updateLock(cache, lockFile, nodeVersion) {
  let old;
  try {
    old = readLock();
  } catch {
    old = undefined;
  }
  const version = nodeVersion ?? old?.node?.version;
  if (!version) throw new Error('no Node version pinned yet: give --node VERSION');
  const lock = { node: { version }, debian: {} };
  for (const arch of Object.keys(ARCHES)) {
    lock.node[arch] = await registryPin(ARCHES[arch].npmPackage, version);
    updateIndex(cache, arch);
    const pins = resolvePins(
      cache,
      arch,
      PACKAGES.map((p) => p.name),
    );
    lock.debian[arch] = pins.sort((a, b) => a.package.localeCompare(b.package));
  }
  writeFileSync(lockFile, `${JSON.stringify(lock, null, 2)}\n`);
}
