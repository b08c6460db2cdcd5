// What a CLI command reads and writes, as one object: the process's streams in production, strings
// in tests (so a command runs in the test process with its output captured).
import { readFileSync } from 'node:fs';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** The whole of standard input (for `--claims -`). */
  readStdin(): Promise<string>;
  readFile(path: string): string;
  env: NodeJS.ProcessEnv;
}

export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    async readStdin() {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    readFile: (path) => readFileSync(path, 'utf8'),
    env: process.env,
  };
}
