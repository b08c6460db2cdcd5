// Builds the Go program in ./ocibuild (go-containerregistry) into the cache folder, once per version
// of its sources, and runs it on a plan.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { imageDir } from './contents.mjs';

const sourceDir = join(imageDir, 'ocibuild');

/** The image build's cache folder: downloads by checksum, the private apt roots, ocibuild. */
export const imageCache = () =>
  join(resolve(process.env.K8S_EA_CACHE ?? join(imageDir, '../../.cache')), 'image');

/** The binary for the current sources (built when missing). */
export function ensureOcibuild(cache) {
  const hash = createHash('sha256');
  for (const f of readdirSync(sourceDir).sort()) hash.update(f).update(readFileSync(join(sourceDir, f)));
  const binary = join(cache, 'tools', `ocibuild-${hash.digest('hex').slice(0, 16)}`, 'ocibuild');
  if (!existsSync(binary))
    execFileSync('go', ['build', '-trimpath', '-o', binary, '.'], { cwd: sourceDir, stdio: 'inherit' });
  return binary;
}

/** Runs ocibuild on a plan file; returns its report (digest, sizes), or throws with its error. */
export function runOcibuild(binary, planFile) {
  const r = spawnSync(binary, ['-plan', planFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr.trim() || `ocibuild exited with ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout);
}
