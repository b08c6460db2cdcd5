// The bundles the demo runs: the action's committed dist/ and the broker's build/broker/, each rebuilt
// through the shared helper (test/support/ensure-built.ts) when missing or older than its sources.
import { statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ACTION_BUILD, BROKER_BUILD, ensureBuilt, staleness } from '../../test/support/ensure-built.js';
import { repoRoot } from '../../test/support/repo-root.js';

export { repoRoot };
export const BROKER_BUNDLE = BROKER_BUILD.outputs[0]!;

/** Builds what is stale; resolves with one line per bundle (why it was built, then path and size). */
export async function ensureBundles(): Promise<string[]> {
  const lines: string[] = [];
  for (const target of [ACTION_BUILD, BROKER_BUILD]) {
    const problem = staleness(target);
    if (problem) lines.push(`${problem}: building ${target.outputs.join(', ')}`);
    for (const file of await ensureBuilt(target))
      lines.push(`${relative(repoRoot, file)} (${Math.round(statSync(file).size / 1024)} KiB)`);
  }
  return lines;
}

export const brokerBundlePath = (): string => join(repoRoot, BROKER_BUNDLE);
