// The edge test's network, made by the test and removed by it (root; `ip netns`, veth, nft):
//
//   host (API server, brokers: loopback only) ──veth── "edge" ns ──veth── "runner" ns
//      198.18.N.1                              198.18.N.2 | 198.19.N.1     198.19.N.2
//
// The brokers dial out from the host to the edge's tunnel port. The edge namespace may answer
// connections but open none (nft: output only for established flows), so it reaches neither the
// API server nor a broker port. The runner namespace has one route, to the edge's link; nothing
// forwards beyond it. Its /etc/hosts (ip netns exec bind-mounts /etc/netns/<ns>/hosts) names the
// broker and the gateway at the edge's address, as public DNS would.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const IP =
  spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).stdout.trim() || '/usr/sbin/ip';

export interface EdgeNetwork {
  edgeNs: string;
  runnerNs: string;
  /** The host's end of the edge link. */
  hostAddress: string;
  /** The edge's address on the host link (its tunnel port listens there). */
  edgeTunnelAddress: string;
  /** The edge's address on the runner link (its public port listens there). */
  edgePublicAddress: string;
  runnerAddress: string;
  /** A script that runs node inside the runner namespace (the runner's `node`). */
  runnerNode: string;
  /** Runs `cmd` inside `ns` to its end. */
  run(ns: string, cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Starts `cmd` inside `ns`, its output lines collected. */
  start(ns: string, cmd: string, args: string[], env?: Record<string, string>): Started;
  /** Removes both namespaces, their links and the hosts file; lists what is still there (none). */
  remove(): string[];
}

export interface Started {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** Resolves with the first line matching, or rejects after timeoutMs. */
  line(match: (l: string) => boolean, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function must(args: string[]): void {
  const r = spawnSync(IP, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

/** `hostNames` resolve in the runner namespace to `namesAt` (default: the edge's public address). */
export function createEdgeNetwork(dir: string, hostNames: string[], namesAt?: string): EdgeNetwork {
  const n = 20 + (process.pid % 200);
  const edgeNs = `k8sea-edge-${process.pid}`;
  const runnerNs = `k8sea-runner-${process.pid}`;
  const hostIf = `kea${n}h`;
  const hostsDir = `/etc/netns/${runnerNs}`;
  const net = {
    hostAddress: `198.18.${n}.1`,
    edgeTunnelAddress: `198.18.${n}.2`,
    edgePublicAddress: `198.19.${n}.1`,
    runnerAddress: `198.19.${n}.2`,
  };
  const remove = (): string[] => {
    spawnSync(IP, ['netns', 'del', edgeNs]);
    spawnSync(IP, ['netns', 'del', runnerNs]);
    spawnSync(IP, ['link', 'del', hostIf]);
    rmSync(hostsDir, { recursive: true, force: true });
    try {
      rmdirSync('/etc/netns'); // only when empty: another user's namespaces keep it
    } catch {
      // not empty, or not there
    }
    const namespaces = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout;
    const links = spawnSync(IP, ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    return [
      ...[edgeNs, runnerNs].filter((ns) => namespaces.includes(ns)),
      ...(links.includes(`${hostIf}@`) || links.includes(`${hostIf}:`) ? [hostIf] : []),
      ...(existsSync(hostsDir) ? [hostsDir] : []),
    ];
  };
  try {
    must(['netns', 'add', edgeNs]);
    must(['netns', 'add', runnerNs]);
    must(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth-host', 'netns', edgeNs]);
    must(['addr', 'add', `${net.hostAddress}/30`, 'dev', hostIf]);
    must(['link', 'set', hostIf, 'up']);
    must([
      '-n',
      edgeNs,
      'link',
      'add',
      'eth-runner',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      runnerNs,
    ]);
    must(['-n', edgeNs, 'addr', 'add', `${net.edgeTunnelAddress}/30`, 'dev', 'eth-host']);
    must(['-n', edgeNs, 'addr', 'add', `${net.edgePublicAddress}/30`, 'dev', 'eth-runner']);
    must(['-n', runnerNs, 'addr', 'add', `${net.runnerAddress}/30`, 'dev', 'eth0']);
    for (const [ns, ifs] of [
      [edgeNs, ['lo', 'eth-host', 'eth-runner']],
      [runnerNs, ['lo', 'eth0']],
    ] as const)
      for (const i of ifs) must(['-n', ns, 'link', 'set', i, 'up']);
    const nft = (args: string[]) => {
      const r = spawnSync(IP, ['netns', 'exec', edgeNs, 'nft', ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
    };
    nft(['add', 'table', 'inet', 'edge']);
    nft(['add', 'chain', 'inet', 'edge', 'out', '{ type filter hook output priority 0; policy drop; }']);
    nft(['add', 'rule', 'inet', 'edge', 'out', 'ct', 'state', 'established,related', 'accept']);
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(
      join(hostsDir, 'hosts'),
      `127.0.0.1 localhost\n${namesAt ?? net.edgePublicAddress} ${hostNames.join(' ')}\n`,
    );
  } catch (err) {
    remove();
    throw err;
  }
  const runnerNode = join(dir, 'runner-node');
  // A node script, not sh: the runner's INPUT_BROKER-URL is no shell name, and dash drops such names.
  writeFileSync(
    runnerNode,
    `#!${process.execPath}\nconst r = require('node:child_process').spawnSync(${JSON.stringify(IP)}, ` +
      `['netns', 'exec', ${JSON.stringify(runnerNs)}, process.execPath, ...process.argv.slice(2)], { stdio: 'inherit' });\n` +
      'process.exit(r.status ?? 1);\n',
  );
  chmodSync(runnerNode, 0o755);
  return {
    edgeNs,
    runnerNs,
    ...net,
    runnerNode,
    run: (ns, cmd, args) => {
      const r = spawnSync(IP, ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: 30_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    start: (ns, cmd, args, env = {}) => startIn(ns, cmd, args, env),
    remove,
  };
}

function startIn(ns: string, cmd: string, args: string[], env: Record<string, string>): Started {
  const child = spawn(IP, ['netns', 'exec', ns, cmd, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<(l: string) => void>();
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of waiters) w(l);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (c) => {
      code = c;
      r(c);
    }),
  );
  return {
    child,
    lines,
    exited,
    line(match, timeoutMs = 20_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`no matching line in ${timeoutMs} ms; output:\n${lines.join('\n')}`));
        }, timeoutMs);
        const wake = (l: string) => {
          if (!match(l)) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(l);
        };
        waiters.add(wake);
      });
    },
    async stop(signal = 'SIGTERM') {
      if (code === undefined) child.kill(signal);
      return exited;
    },
  };
}
