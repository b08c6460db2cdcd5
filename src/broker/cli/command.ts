// One CLI command: its help text, its options, and what it does. run-cli.ts parses the command line
// against `options` (strictly: an unknown option is a usage error) before calling `run`.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CliIo } from './cli-io.js';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface Command {
  /** The words that select it, e.g. `policy check`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text, from `usage:` on. */
  help: string;
  options: OptionsConfig;
  /** How many positional arguments it takes. */
  positionals: { min: number; max: number };
  /** Resolves with the exit code, or undefined when the process keeps running (serve). */
  run(args: ParsedArgs, io: CliIo): Promise<number | undefined>;
}

/** A wrong command line: printed as one line plus a pointer to --help, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: command.options, strict: true, allowPositionals: true });
  } catch (err) {
    // node:util's messages are clear ("Unknown option '--x'"); drop its hint about `--`.
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { min, max } = command.positionals;
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`${command.name}: missing argument (see --help)`);
  if (n > max)
    throw new UsageError(`${command.name}: unexpected argument ${JSON.stringify(parsed.positionals[max])}`);
  return parsed as ParsedArgs;
}

/** A required string option, or a usage error naming it. */
export function requiredOption(args: ParsedArgs, command: Command, name: string): string {
  const value = args.values[name];
  if (typeof value !== 'string' || value === '')
    throw new UsageError(`${command.name}: --${name} is required`);
  return value;
}
