// The machine a run happened on, recorded beside its figures (they mean little without it).
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem, release, platform } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  kubectl: string;
  /** 1-minute load average when the run started: a busy machine makes every figure noisier. */
  loadAverageAtStart: number;
  commit: string;
}

const firstLine = (cmd: string, args: string[]): string => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'unknown';
};

export function machineInfo(): MachineInfo {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    kubectl: firstLine('kubectl', ['version', '--client']),
    loadAverageAtStart: loadavg()[0]!,
    commit: firstLine('git', ['rev-parse', '--short', 'HEAD']),
  };
}
