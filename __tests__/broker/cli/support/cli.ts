// The broker CLI run inside the test process (cli/run-cli.ts) with its output captured, and
// throwaway files for its arguments.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../../../src/broker/cli/run-cli.js';

export interface CliRun {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[], stdin = ''): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
    readStdin: () => Promise.resolve(stdin),
    readFile: (p) => readFileSync(p, 'utf8'),
    env: {},
  });
  return { code, stdout, stderr };
}

export interface TempFiles {
  write(name: string, text: string): string;
  cleanup(): void;
}

export function tempFiles(): TempFiles {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-cli-'));
  return {
    write(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
