// A small Dockerfile reader for the test that compares the Dockerfile with the image the build script
// makes (no container engine here): instructions per stage, continuation lines joined, comments
// dropped, global ARG defaults substituted into FROM.
import { readFileSync } from 'node:fs';

export interface Instruction {
  op: string; // upper case: FROM, COPY, ENV, ...
  args: string;
}

export interface Stage {
  from: string; // with global ARGs substituted
  name?: string;
  instructions: Instruction[];
}

export function readDockerfile(file: string): Stage[] {
  const lines = readFileSync(file, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', args = ''] = line.match(/^(\S+)\s+(.*)$/) ?? [];
    const upper = op.toUpperCase();
    if (upper === 'FROM') {
      const [image = '', , name] = args
        .replace(/\$\{(\w+)\}/g, (_, v: string) => globalArgs.get(v) ?? '')
        .split(/\s+/);
      stages.push({ from: image, name, instructions: [] });
    } else if (stages.length === 0 && upper === 'ARG') {
      const [k = '', v = ''] = args.split('=');
      globalArgs.set(k, v);
    } else {
      stages.at(-1)?.instructions.push({ op: upper, args });
    }
  }
  return stages;
}

/** The values of one instruction in a stage (the last one wins for ENTRYPOINT, CMD, USER, WORKDIR). */
export const all = (stage: Stage, op: string): string[] =>
  stage.instructions.filter((i) => i.op === op).map((i) => i.args);

/** An exec-form (JSON array) instruction's value. */
export const execForm = (stage: Stage, op: string): string[] =>
  JSON.parse(all(stage, op).at(-1) ?? 'null') as string[];
