// How busy the machine was with work that is not the bench's own while a scenario ran. A load
// average cannot say it: the bench itself keeps both cores busy. What the kernel counts as busy CPU
// in /proc/stat, minus the CPU of the bench's own process trees (this process with its children, and
// the control plane with its children), is what other work took from the scenario.
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

/** USER_HZ: the kernel reports CPU times in ticks of 10 ms on every Linux the bench runs on. */
const TICK_MS = 10;

/** Above this share of one core taken by other work, a scenario's figures are flagged noisy. */
export const NOISY_FOREIGN_CORES = 0.2;
/** A 1-minute load average at least this high before a scenario starts flags its figures noisy. */
export const NOISY_LOAD_AT_START = 1;

export interface ScenarioNoise {
  /** The machine's 1-minute load average when the scenario started (the bench is idle then). */
  loadAtStart: number;
  /** CPU that processes outside the bench used during the scenario, in ms. */
  foreignCpuMs: number;
  /** The same as cores' worth over the scenario's wall time. */
  foreignCores: number;
  noisy: boolean;
}

/** Busy CPU of the whole machine so far, in ms (every state but idle and iowait). */
function machineBusyMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) * TICK_MS;
}

/** Parent pid and CPU (own plus reaped children's) of every process, from /proc. */
function processTable(): Map<number, { ppid: number; cpuMs: number }> {
  const table = new Map<number, { ppid: number; cpuMs: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After "pid (comm) ": state, ppid, ... utime is the 12th field, stime, cutime, cstime follow.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cpuMs = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
      table.set(Number(entry), { ppid: Number(f[1]), cpuMs });
    } catch {
      // the process ended while the table was read
    }
  }
  return table;
}

/**
 * CPU so far of the trees rooted at `roots`. A child that ended and was waited for is in its parent's
 * children's time; one that ended between two readings without being waited for is lost, which
 * counts its CPU as foreign: the flag errs towards noisy.
 */
export function treesCpuMs(roots: number[]): number {
  const table = processTable();
  const inTree = new Set<number>();
  let total = 0;
  for (const [pid, p] of table) {
    let at: number | undefined = pid;
    for (let depth = 0; at !== undefined && depth < 64; depth++) {
      if (roots.includes(at) || inTree.has(at)) {
        inTree.add(pid);
        total += p.cpuMs;
        break;
      }
      at = table.get(at)?.ppid;
    }
  }
  return total;
}

/**
 * Waits, at most `maxMs`, until the 1-minute load average is below NOISY_LOAD_AT_START. The bench is
 * idle while it waits: what it waits out is mostly the echo of its own previous scenario (the load
 * average decays over a minute), which would otherwise flag the next scenario noisy on a quiet
 * machine. Other work that keeps the load up is still flagged: the wait ends at its bound.
 */
export async function settleLoad(
  maxMs: number,
  probe: { load?: () => number; pollMs?: number } = {},
): Promise<{ waitedMs: number; from: number; to: number }> {
  const load = probe.load ?? (() => loadavg()[0]!);
  const started = Date.now();
  const from = load();
  let to = from;
  while (to >= NOISY_LOAD_AT_START && Date.now() - started < maxMs) {
    await new Promise((r) => setTimeout(r, probe.pollMs ?? 1000));
    to = load();
  }
  return { waitedMs: Date.now() - started, from, to };
}

/** Starts measuring; the returned function ends the measurement and says how noisy it was. */
export function watchForeignLoad(ownRoots: number[]): () => ScenarioNoise {
  const loadAtStart = loadavg()[0]!;
  const started = Date.now();
  const busy0 = machineBusyMs();
  const own0 = treesCpuMs(ownRoots);
  return () => {
    const wallMs = Math.max(1, Date.now() - started);
    const foreignMs = Math.max(0, machineBusyMs() - busy0 - (treesCpuMs(ownRoots) - own0));
    const foreignCores = Math.min(cpus().length, foreignMs / wallMs);
    return {
      loadAtStart,
      foreignCpuMs: foreignMs,
      foreignCores: Math.round(foreignCores * 100) / 100,
      noisy: foreignCores > NOISY_FOREIGN_CORES || loadAtStart >= NOISY_LOAD_AT_START,
    };
  };
}
