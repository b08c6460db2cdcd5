// Runs the README's quick-start commands for real, on a fresh clone, the way a newcomer would.
//
//   node scripts/check-readme.mjs [--dry-run] [--only <regex>] [--reuse-cache] [--keep-clone]
//                                 [--working-tree]
//
// It clones the committed HEAD of this repository into a temporary directory (uncommitted changes
// are not part of the check: commit first, or pass --working-tree to copy the files git would
// commit now: tracked and untracked, minus the ignored) and runs the ```bash blocks above the README's first
// `## ` heading there with `bash -euo pipefail`, each command line announced and timed. By default
// the clone builds its own control plane, as a fresh clone would (~6 min or more the first time);
// --reuse-cache points it at this checkout's .cache instead. The clone's control plane is stopped
// and the clone removed at the end (--keep-clone keeps the directory).
// Exit status: 0 when every command succeeded, 1 otherwise, 2 for bad usage.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The command lines of the ```bash blocks before the README's first `## ` heading: comment lines
 * dropped, backslash continuations joined, trailing comments kept (bash ignores them).
 */
export function quickStartCommands(markdown) {
  const lines = markdown.replace(/\\\n/g, ' ').split('\n');
  const end = lines.findIndex((l) => /^## /.test(l));
  const out = [];
  let inBlock = false;
  for (const line of lines.slice(0, end < 0 ? lines.length : end)) {
    if (!inBlock && /^```(bash|sh|shell)\s*$/.test(line.trim())) inBlock = true;
    else if (inBlock && line.trim() === '```') inBlock = false;
    else if (inBlock && line.trim() !== '' && !line.trim().startsWith('#')) out.push(line.trim());
  }
  return out;
}

const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

function scriptFor(commands) {
  const body = commands.flatMap((c) => [
    `echo; echo ${shellQuote(`>>> ${c}`)}; t=$SECONDS`,
    c,
    `echo ${shellQuote(`<<< ok:`)} "$((SECONDS - t)) s"`,
  ]);
  return ['set -euo pipefail', ...body].join('\n');
}

/** The working tree as a fresh clone would have it if it were committed now. */
function copyWorkingTree(dest) {
  const files = git(['ls-files', '--cached', '--others', '--exclude-standard', '-z']).split('\0');
  for (const f of files.filter((x) => x !== '')) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    cpSync(join(repoRoot, f), join(dest, f), { errorOnExist: false, force: true });
  }
}

function git(args) {
  const r = spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function main() {
  let opts;
  try {
    opts = parseArgs({
      options: {
        'dry-run': { type: 'boolean', default: false },
        only: { type: 'string' },
        'reuse-cache': { type: 'boolean', default: false },
        'keep-clone': { type: 'boolean', default: false },
        'working-tree': { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`check-readme: ${err.message}\n`);
    return 2;
  }
  const all = quickStartCommands(readFileSync(join(repoRoot, 'README.md'), 'utf8'));
  const only = opts.only ? new RegExp(opts.only) : undefined;
  const commands = only ? all.filter((c) => only.test(c)) : all;
  if (commands.length === 0) {
    process.stderr.write('check-readme: no quick-start commands found (or none matched --only)\n');
    return 1;
  }
  if (opts['dry-run']) {
    for (const c of commands) process.stdout.write(`${c}\n`);
    return 0;
  }

  const head = git(['rev-parse', 'HEAD']);
  if (!opts['working-tree'] && git(['status', '--porcelain', '--untracked-files=no']) !== '')
    process.stdout.write(
      'check-readme: note: uncommitted changes are not part of this check (it clones HEAD)\n',
    );
  const clone = mkdtempSync(join(tmpdir(), 'k8s-ea-readme-'));
  const started = Date.now();
  let code;
  try {
    if (opts['working-tree']) {
      process.stdout.write(
        `check-readme: copying the working tree (HEAD ${head.slice(0, 12)} + changes) into ${clone}\n`,
      );
      copyWorkingTree(clone);
    } else {
      process.stdout.write(`check-readme: cloning ${head.slice(0, 12)} into ${clone}\n`);
      const c = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', repoRoot, clone], {
        stdio: 'inherit',
      });
      if (c.status !== 0) throw new Error('git clone failed');
    }
    const env = { ...process.env };
    // A fresh clone has no K8S_EA_* settings of this shell; only the cache is chosen here.
    for (const k of Object.keys(env)) if (k.startsWith('K8S_EA_')) delete env[k];
    if (opts['reuse-cache']) env.K8S_EA_CACHE = join(repoRoot, '.cache');
    const child = spawn('bash', ['-c', scriptFor(commands)], { cwd: clone, env, stdio: 'inherit' });
    const stop = () => child.kill('SIGINT');
    process.on('SIGINT', stop);
    code = await new Promise((r) => child.on('close', (status) => r(status ?? 1)));
    process.off('SIGINT', stop);
    process.stdout.write(
      `\ncheck-readme: ${code === 0 ? 'all quick-start commands succeeded' : `FAILED (exit ${code})`} ` +
        `in ${Math.round((Date.now() - started) / 1000)} s\n`,
    );
  } catch (err) {
    process.stderr.write(`check-readme: ${err.message}\n`);
    code = 1;
  } finally {
    if (!opts['reuse-cache'])
      // The clone's own control plane (npm test leaves the one it started running).
      spawnSync('node', ['scripts/cluster.mjs', 'down', '--quiet'], { cwd: clone, stdio: 'inherit' });
    if (opts['keep-clone']) process.stdout.write(`check-readme: clone kept at ${clone}\n`);
    else rmSync(clone, { recursive: true, force: true });
  }
  return code === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
