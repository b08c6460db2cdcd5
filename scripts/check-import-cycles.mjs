// Fails when the modules under src/ import each other in a cycle, type-only imports included: a
// cycle of types is still a design cycle (a route importing the app that imports the route).
// Part of `npm run lint`. Uses the TypeScript compiler's own import scanner and module resolution.
//
// usage: node scripts/check-import-cycles.mjs [dir ...]   (default: src)
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

const repoRoot = resolve(import.meta.dirname, '..');
const roots = (process.argv.length > 2 ? process.argv.slice(2) : ['src']).map((d) => resolve(repoRoot, d));

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|cts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const configPath = join(repoRoot, 'tsconfig.json');
const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
const { options } = ts.parseJsonConfigFileContent(config, ts.sys, repoRoot);

const files = roots.flatMap(sourceFiles);
const inScope = new Set(files);
/** file → the files in scope it imports (static imports, re-exports, dynamic imports of literals). */
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

// Tarjan's strongly connected components: every component with more than one file (or a file
// importing itself) is a cycle.
let index = 0;
const stack = [];
const state = new Map();
const cycles = [];
function visit(file) {
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
}
for (const file of files) if (!state.has(file)) visit(file);

if (cycles.length > 0) {
  const rel = (f) => relative(repoRoot, f);
  for (const component of cycles) {
    const members = new Set(component);
    process.stderr.write(`import cycle among ${component.length} module(s):\n`);
    for (const file of [...component].sort())
      for (const next of graph.get(file))
        if (members.has(next)) process.stderr.write(`  ${rel(file)} -> ${rel(next)}\n`);
  }
  process.exitCode = 1;
} else {
  process.stdout.write(`no import cycles in ${files.length} modules\n`);
}
