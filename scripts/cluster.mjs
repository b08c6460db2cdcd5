// The local control plane for tests and the demo: a kube-apiserver (embedded etcd) and a
// kube-controller-manager built from the k8s.io/kubernetes Go module in test/cluster/.
//
//   node scripts/cluster.mjs up [--quiet]   build if needed, start or reuse; last line KUBECONFIG=<path>
//   node scripts/cluster.mjs down           stop and remove all state
//   node scripts/cluster.mjs build          build only
//
// The binary and the cluster state live in a git-ignored cache folder (K8S_EA_CACHE overrides it),
// so a second `up` neither rebuilds nor restarts.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const moduleDir = join(repo, 'test', 'cluster');
const cacheDir = resolve(process.env.K8S_EA_CACHE ?? join(repo, '.cache'));
const binary = join(cacheDir, 'bin', 'kubecluster');
const stampFile = `${binary}.stamp`;
export const stateDir = join(cacheDir, 'cluster');
const K8S_VERSION = 'v1.36.3';

const log = (quiet, msg) => {
  if (!quiet) process.stderr.write(`cluster: ${msg}\n`);
};

function sourceStamp() {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) h.update(readFileSync(join(moduleDir, f)));
  return h.digest('hex');
}

function isBuilt() {
  return existsSync(binary) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === sourceStamp();
}

/** Builds the control plane binary unless an up-to-date one is cached. Progress goes to stderr. */
export async function build({ quiet = false } = {}) {
  if (isBuilt()) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  const started = Date.now();
  log(
    false,
    `building kube-apiserver + kube-controller-manager ${K8S_VERSION} (first time: ~6 min on 2 cores)`,
  );
  const dl = spawnSync('go', ['mod', 'download'], {
    cwd: moduleDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (dl.status !== 0) throw new Error('go mod download failed (see above)');
  const ldflags = [
    '-s -w',
    `-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}`,
    '-X k8s.io/component-base/version.gitMajor=1',
    '-X k8s.io/component-base/version.gitMinor=36',
  ].join(' ');
  const child = spawn('go', ['build', '-v', '-trimpath', '-ldflags', ldflags, '-o', binary, '.'], {
    cwd: moduleDir,
    env: { ...process.env, CGO_ENABLED: '0' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let compiled = 0;
  const errors = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    // `go build -v` names each package as it compiles it; anything else is an error worth keeping.
    if (/^[\w.-]+(\/[\w.~-]+)*$/.test(line)) {
      compiled += 1;
      if (compiled % 200 === 0)
        log(quiet, `  ${compiled} packages compiled (${Math.round((Date.now() - started) / 1000)} s)`);
    } else errors.push(line);
  });
  const code = await new Promise((r) => child.on('close', r));
  if (code !== 0) throw new Error(`go build failed:\n${errors.join('\n')}`);
  writeFileSync(stampFile, sourceStamp());
  log(false, `built in ${Math.round((Date.now() - started) / 1000)} s`);
  return binary;
}

function readState() {
  try {
    const pid = Number(readFileSync(join(stateDir, 'pid'), 'utf8'));
    const server = readFileSync(join(stateDir, 'ready'), 'utf8').trim();
    return { pid, server };
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function clusterInfo() {
  return {
    dir: stateDir,
    kubeconfig: join(stateDir, 'admin.kubeconfig'),
    auditLog: join(stateDir, 'audit.log'),
    server: readState()?.server,
  };
}

function readyz(kubeconfig) {
  const r = spawnSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    {
      encoding: 'utf8',
    },
  );
  return r.status === 0 && r.stdout.trim() === 'ok';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the control plane, or reuses the one already running. Returns clusterInfo(). */
export async function up({ quiet = false } = {}) {
  const state = readState();
  if (state && alive(state.pid) && readyz(clusterInfo().kubeconfig)) {
    log(quiet, `reusing the running control plane at ${state.server}`);
    return clusterInfo();
  }
  if (state && alive(state.pid)) await down({ quiet });
  await build({ quiet });
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const out = openSync(join(stateDir, 'kubecluster.log'), 'a', 0o600);
  const child = spawn(binary, ['serve', stateDir], { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  closeSync(out);
  const started = Date.now();
  log(quiet, 'starting kube-apiserver (embedded etcd) and kube-controller-manager');
  while (!existsSync(join(stateDir, 'ready'))) {
    if (child.exitCode !== null || !alive(child.pid)) {
      const tail = readFileSync(join(stateDir, 'kubecluster.log'), 'utf8').split('\n').slice(-20).join('\n');
      throw new Error(`control plane exited during start:\n${tail}`);
    }
    if (Date.now() - started > 180_000) throw new Error('control plane not ready after 180 s');
    await sleep(200);
  }
  log(quiet, `ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${readState()?.server}`);
  return clusterInfo();
}

/** Stops the control plane and removes its state. Harmless when nothing runs. */
export async function down({ quiet = false } = {}) {
  const state = readState();
  let pid = state?.pid;
  if (!pid) {
    try {
      pid = Number(readFileSync(join(stateDir, 'pid'), 'utf8'));
    } catch {
      pid = undefined;
    }
  }
  if (pid && alive(pid)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    log(quiet, 'stopped');
  }
  rmSync(stateDir, { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...flags] = process.argv.slice(2);
  const quiet = flags.includes('--quiet');
  try {
    if (cmd === 'up') {
      const info = await up({ quiet });
      process.stdout.write(`KUBECONFIG=${info.kubeconfig}\n`);
    } else if (cmd === 'down') {
      await down({ quiet });
    } else if (cmd === 'build') {
      await build({ quiet });
    } else {
      process.stderr.write('usage: cluster.mjs up [--quiet] | down | build\n');
      process.exit(2);
    }
  } catch (err) {
    process.stderr.write(`cluster: ${err.message}\n`);
    process.exit(1);
  }
}
