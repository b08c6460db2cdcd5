// Builds the Go program in ./ocibuild (go-containerregistry) into the cache folder, once per version
// of its sources, and runs it on a plan.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { imageDir } from './contents.mjs';

const sourceDir = join(imageDir, 'ocibuild');

/** The binary for the current sources (built when missing). */
export function ensureOcibuild(cache) {
  const hash = createHash('sha256');
  for (const f of readdirSync(sourceDir).sort()) hash.update(f).update(readFileSync(join(sourceDir, f)));
  const binary = join(cache, 'tools', `ocibuild-${hash.digest('hex').slice(0, 16)}`, 'ocibuild');
  if (!existsSync(binary))
    execFileSync('go', ['build', '-trimpath', '-o', binary, '.'], { cwd: sourceDir, stdio: 'inherit' });
  return binary;
}

/** Runs ocibuild on a plan file; resolves with its report (digest, sizes). */
export function runOcibuild(binary, planFile) {
  const out = execFileSync(binary, ['-plan', planFile], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out);
}
