// Checks the import structure of src/, type-only imports included (a cycle of types is still a
// design cycle): it fails when modules import each other in a cycle, or when an import runs back
// up the layers of the table below. Part of `npm run lint`. Uses the TypeScript compiler's own
// import scanner and module resolution.
//
// usage: node scripts/check-import-cycles.mjs [--root DIR]   (DIR holds the src/ to check; default: this repository)
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/**
 * The rooms of src/ from the ground up: a module may import its own room, rooms of its own floor
 * and rooms of lower floors, never a higher one. The action and the broker share only src/shared/.
 * A room is a folder or a file of src/broker/ (or src/action/ and src/shared/ whole); one missing
 * here fails the check, so a new room takes its place in the table on purpose.
 */
export const LAYERS = [
  ['shared'],
  ['action'],
  [
    // The broker's ground floor: no Kubernetes, no HTTP routes, no policy.
    'broker/logger.ts',
    'broker/metrics.ts',
    'broker/types.ts',
    'broker/unsafe-text.ts',
    'broker/unverified-jwt.ts',
    'broker/naming.ts',
    'broker/audit.ts',
    'broker/grant-work.ts',
    'broker/grant-run.ts',
    'broker/stop-stack.ts',
    'broker/net',
    'broker/yaml-fields',
  ],
  ['broker/auth', 'broker/kube'],
  ['broker/grants', 'broker/policy', 'broker/config', 'broker/rbac', 'broker/usage'],
  ['broker/live-policy.ts', 'broker/deps.ts', 'broker/advise'],
  // edge-relay is the edge's own process (run by the CLI's `edge`); edge is the broker's tunnel to it.
  ['broker/http', 'broker/gateway', 'broker/edge', 'broker/edge-relay'],
  ['broker/app.ts'],
  ['broker/runtime.ts', 'broker/policy-reload.ts'],
  ['broker/start-from-config.ts'],
  ['broker/cli', 'broker/index.ts'],
];

/** The two sides that never import each other (each may import shared). */
const SIDES = ['action', 'broker'];

const repoRoot = resolve(import.meta.dirname, '..');

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|cts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** file → the files under `src` it imports (static imports, re-exports, dynamic imports of literals). */
export function importGraph(src) {
  const { config } = ts.readConfigFile(join(repoRoot, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, repoRoot);
  const files = sourceFiles(src);
  const inScope = new Set(files);
  const graph = new Map();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = new Set();
    for (const { fileName } of importedFiles) {
      const resolved = ts.resolveModuleName(fileName, file, options, ts.sys).resolvedModule;
      const target = resolved && resolve(resolved.resolvedFileName);
      if (target && inScope.has(target)) targets.add(target);
    }
    graph.set(file, [...targets]);
  }
  return graph;
}

/** Tarjan's strongly connected components: each with more than one file, or a file importing itself. */
export function findCycles(graph) {
  let index = 0;
  const stack = [];
  const state = new Map();
  const cycles = [];
  const visit = (file) => {
    const s = { index, low: index, onStack: true };
    index += 1;
    state.set(file, s);
    stack.push(file);
    for (const next of graph.get(file)) {
      const n = state.get(next);
      if (!n) {
        visit(next);
        s.low = Math.min(s.low, state.get(next).low);
      } else if (n.onStack) s.low = Math.min(s.low, n.index);
    }
    if (s.low !== s.index) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || graph.get(file).includes(file)) cycles.push(component);
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

/** The room of a file (relative to src/, '/'-separated) and its floor; undefined when not in the table. */
export function roomOf(path) {
  const parts = path.split(sep).join('/').split('/');
  const candidates = parts[0] === 'broker' ? [parts.slice(0, 2).join('/')] : [parts[0]];
  for (const [floor, rooms] of LAYERS.entries())
    for (const room of rooms) if (candidates.includes(room)) return { room, floor };
  return undefined;
}

/** Imports that run up the table or across the sides, and files in no room of the table. */
export function layerProblems(graph, src) {
  const problems = [];
  const rel = (f) => relative(src, f);
  for (const [file, targets] of graph) {
    const from = roomOf(rel(file));
    if (!from) {
      problems.push(`src/${rel(file)}: in no room of the layer table (scripts/check-import-cycles.mjs)`);
      continue;
    }
    for (const target of targets) {
      const to = roomOf(rel(target));
      if (!to || to.room === from.room) continue;
      const sideOf = (room) => SIDES.find((side) => room === side || room.startsWith(`${side}/`));
      const crossing = sideOf(to.room) && sideOf(from.room) !== sideOf(to.room);
      if (crossing || to.floor > from.floor)
        problems.push(
          `src/${rel(file)} -> src/${rel(target)}: ${from.room} (floor ${from.floor}) may not import ${to.room} (floor ${to.floor})`,
        );
    }
  }
  return problems;
}

function main() {
  const at = process.argv.indexOf('--root');
  const root = at > 0 ? process.argv[at + 1] : undefined;
  const src = join(root ? resolve(root) : repoRoot, 'src');
  const graph = importGraph(src);
  const cycles = findCycles(graph);
  const rel = (f) => relative(src, f);
  for (const component of cycles) {
    const members = new Set(component);
    process.stderr.write(`import cycle among ${component.length} module(s):\n`);
    for (const file of [...component].sort())
      for (const next of graph.get(file))
        if (members.has(next)) process.stderr.write(`  src/${rel(file)} -> src/${rel(next)}\n`);
  }
  const problems = layerProblems(graph, src);
  for (const problem of problems) process.stderr.write(`import against the layers: ${problem}\n`);
  if (cycles.length > 0 || problems.length > 0) process.exitCode = 1;
  else process.stdout.write(`no import cycles and no import against the layers in ${graph.size} modules\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) main();
