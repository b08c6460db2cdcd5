// The broker's command line: `serve` (the default, so `--config F` alone still runs the broker),
// `policy check`, `policy test`, `policy advise`, `rbac generate`, `rbac check`, `edge`; `--help`
// anywhere prints help and exits 0, a wrong command line prints one line and exits 2 (exit-codes.ts).
import { errorMessage } from '../../shared/errors.js';
import { parseCommandArgs, UsageError, type Command } from './command.js';
import type { CliIo } from './cli-io.js';
import { edge } from './edge.js';
import { EXIT } from './exit-codes.js';
import { policyAdvise } from './policy-advise.js';
import { policyCheck } from './policy-check.js';
import { policyTest } from './policy-test.js';
import { rbacCheck } from './rbac-check.js';
import { rbacGenerate } from './rbac-generate.js';
import { serve } from './serve.js';

export const COMMANDS: readonly Command[] = [
  serve,
  policyCheck,
  policyTest,
  policyAdvise,
  rbacGenerate,
  rbacCheck,
  edge,
];

export const TOP_HELP = `usage: node index.js <command> [options]      (in the image: /app/index.js)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(15)} ${c.summary}`).join('\n')}

Without a command, --config F runs serve. <command> --help describes each.
exit codes: 0 ok (valid, allowed, matches), 1 no (invalid, refused, drift, failed to start),
            2 usage error, 3 the cluster could not be read
`;

const wantsHelp = (argv: string[]) => argv.some((a) => a === '--help' || a === '-h');

function selectCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  if (argv[0] === undefined || argv[0].startsWith('-')) return { command: serve, rest: argv };
  const two = COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`);
  if (two) return { command: two, rest: argv.slice(2) };
  const one = COMMANDS.find((c) => c.name === argv[0]);
  return one ? { command: one, rest: argv.slice(1) } : undefined;
}

/** Runs one command line; resolves with the exit code, or undefined while the broker serves. */
export async function runCli(argv: string[], io: CliIo): Promise<number | undefined> {
  if (argv.length === 0 || (wantsHelp(argv) && (argv[0] === undefined || argv[0].startsWith('-')))) {
    (argv.length === 0 ? io.err : io.out)(TOP_HELP);
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  const selected = selectCommand(argv);
  if (!selected) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
    const known =
      group.length > 0 ? group.map((c) => c.name).join(', ') : COMMANDS.map((c) => c.name).join(', ');
    const help = wantsHelp(argv) && group.length > 0;
    (help ? io.out : io.err)(
      help
        ? `${group.map((c) => `  ${c.name.padEnd(15)} ${c.summary}`).join('\n')}\n`
        : `unknown command ${JSON.stringify(argv.slice(0, group.length > 0 ? 2 : 1).join(' '))} (commands: ${known}; see --help)\n`,
    );
    return help ? EXIT.ok : EXIT.usage;
  }
  const { command, rest } = selected;
  if (wantsHelp(rest)) {
    io.out(command.help);
    return EXIT.ok;
  }
  try {
    return await command.run(parseCommandArgs(command, rest), io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n`);
      return EXIT.usage;
    }
    io.err(`${command.name}: ${errorMessage(err)}\n`);
    return EXIT.unavailable;
  }
}
