// Reads the shell commands a README tells people to run, and checks each against what this
// repository supports: npm scripts in package.json, files that exist, installed binaries, and the
// demo's own options. The README is for newcomers; a command that does not work is a bug.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDemoArgs } from '../../../scripts/demo.js';

/**
 * The ```bash blocks of the part before the first `## ` heading ('top'), of one `## ` section,
 * or of the whole document ('all'). Blocks indented inside list items count.
 */
export function bashBlocks(markdown: string, section: 'top' | 'all' | string): string[] {
  const lines = markdown.split('\n');
  const headings = lines.flatMap((l, i) => (/^## /.test(l) ? [i] : []));
  let from = 0;
  let to = section === 'all' ? lines.length : (headings[0] ?? lines.length);
  if (section !== 'top' && section !== 'all') {
    const start = lines.findIndex((l) => l.trim() === `## ${section}`);
    if (start < 0) return [];
    from = start + 1;
    to = headings.find((h) => h > start) ?? lines.length;
  }
  const blocks: string[] = [];
  let current: string[] | undefined;
  for (const line of lines.slice(from, to)) {
    if (current === undefined && /^```(bash|sh|shell)\s*$/.test(line.trim())) current = [];
    else if (current !== undefined && line.trim() === '```') {
      blocks.push(current.join('\n'));
      current = undefined;
    } else current?.push(line);
  }
  return blocks;
}

/** The command lines of a block: continuations joined, comments and blank lines dropped, spaces collapsed. */
export function commandLines(block: string): string[] {
  const joined = block.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map(stripComment)
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '');
}

/** Drops a `# comment` that is not inside quotes. */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** The simple commands of a line (split at &&, ||, ; and |), as word lists. */
export function simpleCommands(line: string): string[][] {
  return line
    .split(/&&|\|\||;|\|/)
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => (part.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^(["'])(.*)\1$/, '$2')));
}

/** Tools the README names as prerequisites (Node, Go, kubectl) plus git and shell builtins. */
const EXTERNAL_TOOLS = new Set(['git', 'kubectl', 'go', 'export', 'echo', 'cat', 'ls']);

export interface RepoFacts {
  root: string;
  scripts: Record<string, string>;
}

export function repoFacts(root: string): RepoFacts {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  return { root, scripts: pkg.scripts ?? {} };
}

/** What is wrong with one simple command, or undefined when this repository supports it. */
export function commandProblem(words: string[], repo: RepoFacts): string | undefined {
  const [cmd, ...args] = words;
  const shown = words.join(' ');
  if (cmd === undefined) return undefined;
  if (/^\w+=/.test(cmd)) return commandProblem(args, repo); // FOO=bar command
  if (cmd === 'npm') return npmProblem(args, repo, shown);
  if (cmd === 'npx') {
    const bin = args.find((a) => !a.startsWith('-'));
    if (!bin || !existsSync(join(repo.root, 'node_modules', '.bin', bin)))
      return `${shown}: ${bin ?? '(nothing)'} is not installed by npm ci`;
    return undefined;
  }
  if (cmd === 'node' || cmd === 'bash' || cmd === 'sh') {
    const file = args.find((a) => !a.startsWith('-'));
    if (!file || !existsSync(join(repo.root, file))) return `${shown}: ${file ?? '(no file)'} does not exist`;
    return undefined;
  }
  if (cmd.startsWith('./') || cmd.startsWith('scripts/') || cmd.startsWith('.ci/'))
    return existsSync(join(repo.root, cmd)) ? undefined : `${shown}: ${cmd} does not exist`;
  if (cmd === 'cd')
    return args[0] && existsSync(join(repo.root, args[0])) ? undefined : `${shown}: no such directory`;
  if (EXTERNAL_TOOLS.has(cmd)) return undefined;
  return `${shown}: "${cmd}" is neither an npm script, a file of this repository nor a prerequisite tool`;
}

/** npm's own commands the docs may use (installing, and setting the version for a release). */
const NPM_BUILTINS = new Set(['ci', 'install', 'i', 'version']);

function npmProblem(args: string[], repo: RepoFacts, shown: string): string | undefined {
  const words = args.filter((a) => a !== '-s' && a !== '--silent');
  const [sub, ...rest] = words;
  if (sub !== undefined && NPM_BUILTINS.has(sub)) return undefined;
  let script: string | undefined;
  let scriptArgs: string[];
  if (sub === 'test' || sub === 't' || sub === 'start') {
    script = sub === 't' ? 'test' : sub;
    scriptArgs = rest;
  } else if (sub === 'run' || sub === 'run-script') {
    script = rest[0];
    scriptArgs = rest.slice(1);
  } else return `${shown}: npm ${sub ?? ''} is not a command these docs should need`;
  if (!script || !(script in repo.scripts)) return `${shown}: package.json has no script "${script ?? ''}"`;
  const passed = scriptArgs[0] === '--' ? scriptArgs.slice(1) : [];
  if (script === 'demo' && passed.length > 0) {
    try {
      parseDemoArgs(passed);
    } catch (err) {
      return `${shown}: the demo refuses these options: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/** The test command of a list of command lines: the first `npm test` / `npm run test…` simple command. */
export function testCommand(lines: string[]): string | undefined {
  for (const line of lines)
    for (const words of simpleCommands(line)) {
      const w = words.filter((x) => x !== '-s' && x !== '--silent');
      if (w[0] === 'npm' && (w[1] === 'test' || w[1] === 't' || (w[1] === 'run' && w[2] === 'test')))
        return words.join(' ');
    }
  return undefined;
}
