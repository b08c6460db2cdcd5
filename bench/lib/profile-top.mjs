// Summarises a V8 CPU profile (a broker's `--cpu-prof` output, bench/lib/profiled-broker.mjs):
//   node bench/lib/profile-top.mjs <file.cpuprofile> [count] [inclusive-regex]
// prints the busy time, the functions with the most self time, and, for every function whose name
// matches the regex, its inclusive time (itself and everything it called).
import { readFileSync } from 'node:fs';

const [file, countArg = '25', pattern] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/lib/profile-top.mjs <file.cpuprofile> [count] [inclusive-regex]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Sample i lasted timeDeltas[i + 1] (the last one is dropped); in microseconds.
const selfUs = new Map();
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
});
const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
let total = 0;
let busy = 0;
const byLabel = new Map();
for (const [id, us] of selfUs) {
  const n = nodes.get(id);
  total += us;
  if (n.callFrame.functionName !== '(idle)') busy += us;
  const l = label(n);
  byLabel.set(l, (byLabel.get(l) ?? 0) + us);
}
const ms = (us) => (us / 1000).toFixed(0).padStart(7);
process.stdout.write(`${file}\n  wall ${ms(total)} ms, busy ${ms(busy)} ms\n  self time:\n`);
for (const [l, us] of [...byLabel].sort((a, b) => b[1] - a[1]).slice(0, Number(countArg)))
  process.stdout.write(`  ${ms(us)} ms ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${l}\n`);

if (pattern) {
  const re = new RegExp(pattern);
  // Inclusive: each sample counts once for every distinct matching function on its stack.
  const inclusive = new Map();
  for (const [id, us] of selfUs) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const l = label(nodes.get(at));
      if (!re.test(l) || seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + us);
    }
  }
  process.stdout.write(`  inclusive time of /${pattern}/:\n`);
  for (const [l, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(countArg)))
    process.stdout.write(`  ${ms(us)} ms ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${l}\n`);
}
