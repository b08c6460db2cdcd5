// What the tests' real parts need besides Node, Go and kubectl, settled before the first test runs (jest's
// global setups call this), so that a fresh clone either gets it or stops in its first seconds with the
// one command that installs it, never minutes into the run:
// - helm, pinned, built from its Go module into the tool cache (scripts/go-tool.mjs; minutes the first
//   time, here and not inside a test's timeout);
// - tinyproxy, the real forward proxy of the proxy tests, and `ip`/`nft`, with which the edge's boundary
//   test builds its network namespaces: Debian packages, which a test run does not install on its own
//   (.ci/run does).
import { spawnSync } from 'node:child_process';
import { ensureGoTool, goToolPath } from '../../scripts/go-tool.mjs';

/** The command that installs tinyproxy, in the message a missing one stops the run with. */
export const TINYPROXY_INSTALL = 'apt-get install -y tinyproxy';
/** The command that installs `ip` and `nft`. */
export const NETWORK_TOOLS_INSTALL = 'apt-get install -y iproute2 nftables';

/** @param {string} cmd @param {string[]} args */
const runs = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return !r.error && r.status === 0;
};

/**
 * Throws at once, naming every missing prerequisite and its command; then builds helm if needed.
 * @param {{ tinyproxy?: boolean, networkTools?: boolean, log?: (line: string) => void }} [o]
 */
export function ensurePrerequisites(o = {}) {
  const log = o.log ?? ((line) => process.stderr.write(`${line}\n`));
  const missing = [];
  if (!runs('go', ['version'])) missing.push('go (1.26+): https://go.dev/dl/');
  if (!runs('kubectl', ['version', '--client']))
    missing.push('kubectl: https://kubernetes.io/docs/tasks/tools/');
  if (o.tinyproxy && !runs('tinyproxy', ['-v']))
    missing.push(`tinyproxy (the proxy tests' real forward proxy): ${TINYPROXY_INSTALL}`);
  if (o.networkTools && !(runs('ip', ['-V']) && runs('nft', ['--version'])))
    missing.push(`ip and nft (the edge's boundary test makes network namespaces): ${NETWORK_TOOLS_INSTALL}`);
  if (missing.length > 0)
    throw new Error(`the tests need, and this machine lacks:\n  ${missing.join('\n  ')}`);
  const helm = goToolPath('helm');
  if (!runs(helm, ['version', '--short'])) {
    log(`building helm from its Go module into ${helm} (once; minutes on 2 cores)`);
    ensureGoTool('helm', 'pipe');
  }
}
