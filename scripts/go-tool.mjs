// A command-line tool built from its Go module into the git-ignored cache, once per pinned version (the
// Go module proxy is the only download). actionlint.mjs, helm.mjs and release/release.mjs use it; so do the
// tests that run helm.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The pinned tools: name → Go package@version. */
/** @type {Record<string, string>} */
export const GO_TOOLS = {
  actionlint: 'github.com/rhysd/actionlint/cmd/actionlint@v1.7.12',
  // The release (scripts/release/release.mjs): pushes the images and their index.
  crane: 'github.com/google/go-containerregistry/cmd/crane@v0.22.1',
  helm: 'helm.sh/helm/v3/cmd/helm@v3.22.0',
};

/**
 * Where the binary of `name` lives (built or not).
 * @param {string} name
 */
export function goToolPath(name) {
  const pkg = GO_TOOLS[name];
  if (!pkg) throw new Error(`unknown Go tool ${name}`);
  const toolsDir = join(resolve(process.env.K8S_EA_CACHE ?? join(repoRoot, '.cache')), 'tools');
  return join(toolsDir, `${name}-${pkg.split('@')[1]}`, name);
}

/**
 * The binary of `name`, built first when missing. Throws when the build fails (its output went to
 * `stdio`: the caller's terminal by default).
 * @param {string} name
 * @param {'inherit' | 'pipe'} [stdio]
 */
export function ensureGoTool(name, stdio = 'inherit') {
  const binary = goToolPath(name);
  if (existsSync(binary)) return binary;
  const pkg = /** @type {string} */ (GO_TOOLS[name]);
  const built = spawnSync('go', ['install', pkg], {
    stdio,
    encoding: 'utf8',
    env: { ...process.env, GOBIN: dirname(binary) },
  });
  if (built.status !== 0)
    throw new Error(`go install ${pkg} failed (${built.status}): ${built.stderr ?? ''}`);
  return binary;
}
