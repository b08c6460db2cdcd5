// The local cluster for tests and the demo: a kube-apiserver (embedded etcd), kube-controller-manager
// and kube-scheduler built from the k8s.io/kubernetes Go module in test/cluster/, and one node: a
// kubelet and kube-proxy from the same module, with containerd, runc and the CNI plugins built from
// theirs (cluster-node.mjs), inside a network namespace of its own. K8S_EA_NODE=0 leaves the node out.
//
//   node scripts/cluster.mjs up [--quiet]   build if needed, start or reuse; last line KUBECONFIG=<path>
//   node scripts/cluster.mjs down           stop and remove all state
//   node scripts/cluster.mjs build          build only
//   node scripts/cluster.mjs import <tar>   import an OCI image archive into the node's containerd
//
// The binaries and the cluster state live in a git-ignored cache folder (K8S_EA_CACHE overrides it),
// so a second `up` neither rebuilds nor restarts.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createServer } from 'node:net';
import { buildNode, missingNodePrerequisites, NODE_PREREQUISITES_COMMAND } from './cluster-node.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const moduleDir = join(repo, 'test', 'cluster');
const cacheDir = resolve(process.env.K8S_EA_CACHE ?? join(repo, '.cache'));
const binary = join(cacheDir, 'bin', 'kubecluster');
const stampFile = `${binary}.stamp`;
export const stateDir = join(cacheDir, 'cluster');
const K8S_VERSION = 'v1.36.3';
/**
 * Whether `build` and `up` include the node: yes unless K8S_EA_NODE=0, which gives the control plane
 * alone (the node's tests then skip, saying so).
 */
export const withNode = process.env.K8S_EA_NODE !== '0';

const log = (quiet, msg) => {
  if (!quiet) process.stderr.write(`cluster: ${msg}\n`);
};

/** go.mod, go.sum and every .go file of the program (not its images: cluster-node.mjs stamps those). */
function sourceStamp() {
  const h = createHash('sha256');
  const files = readdirSync(moduleDir)
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
  for (const f of files)
    h.update(relative(moduleDir, join(moduleDir, f))).update(readFileSync(join(moduleDir, f)));
  return h.digest('hex');
}

function isBuilt() {
  return existsSync(binary) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === sourceStamp();
}

/**
 * Builds the cluster binary and the node parts unless up-to-date ones are cached; returns the binary.
 * Progress goes to stderr.
 */
export async function build({ quiet = false } = {}) {
  await buildControlPlane({ quiet });
  if (withNode)
    await buildNode({
      binDir: dirname(binary),
      moduleDir,
      kubecluster: binary,
      log: (msg) => log(false, msg),
    });
  return binary;
}

async function buildControlPlane({ quiet }) {
  if (isBuilt()) return;
  mkdirSync(dirname(binary), { recursive: true });
  const started = Date.now();
  log(
    false,
    `building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy ${K8S_VERSION} (first time: ~8 min on 2 cores)`,
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

/** Starts the cluster (control plane and node), or reuses the one already running. Returns clusterInfo(). */
export async function up({ quiet = false } = {}) {
  const state = readState();
  if (state && alive(state.pid) && readyz(clusterInfo().kubeconfig)) {
    const node = nodeInfo();
    log(quiet, `reusing the running control plane${node ? ' and node' : ''} at ${state.server}`);
    // Reused as it is: the node's tests skip on a cluster without one, and say so.
    if (withNode && !node)
      log(
        false,
        'the running cluster has no node (started with K8S_EA_NODE=0): cluster:down, then up, adds it',
      );
    return clusterInfo();
  }
  // Before any build: a missing prerequisite fails now, with the command that installs it.
  const missing = withNode ? missingNodePrerequisites() : [];
  if (missing.length > 0)
    throw new Error(`the node needs ${missing.join(', ')}: run \`${NODE_PREREQUISITES_COMMAND}\` as root`);
  if (state && alive(state.pid)) await down({ quiet });
  await build({ quiet });
  await removeState();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const out = openSync(join(stateDir, 'kubecluster.log'), 'a', 0o600);
  const child = spawn(binary, ['serve', stateDir], {
    detached: true,
    stdio: ['ignore', out, out],
    env: withNode ? { ...process.env, KUBECLUSTER_NODE: join(dirname(binary), 'node') } : process.env,
  });
  child.unref();
  closeSync(out);
  const started = Date.now();
  log(quiet, `starting kube-apiserver (embedded etcd), the controllers${withNode ? ' and the node' : ''}`);
  while (!existsSync(join(stateDir, 'ready'))) {
    if (child.exitCode !== null || !alive(child.pid)) {
      const tail = readFileSync(join(stateDir, 'kubecluster.log'), 'utf8').split('\n').slice(-20).join('\n');
      throw new Error(`the cluster exited during start:\n${tail}`);
    }
    if (Date.now() - started > 300_000) throw new Error('the cluster is not ready after 300 s');
    await sleep(200);
  }
  log(quiet, `ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${readState()?.server}`);
  return clusterInfo();
}

/** Removes the state directory, after what a node left in it (mounts, processes, network, cgroups). */
async function removeState() {
  if (existsSync(binary) && existsSync(stateDir)) {
    const r = spawnSync(binary, ['node-down', stateDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`node-down failed: ${r.stderr}`);
  }
  rmSync(stateDir, { recursive: true, force: true });
}

/** Stops the cluster and removes its state, node included. Harmless when nothing runs. */
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
    for (let i = 0; i < 300 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    log(quiet, 'stopped');
  }
  await removeState();
}

/**
 * The running node: its name, its network namespace (for `nsenter --net=`), its address, the host's
 * end of its link (address and interface), its cgroup, its socket directory and containerd's socket.
 * Undefined when no node runs.
 * @returns {{ name: string, netns: string, nodeIP: string, hostIP: string, link: string, cgroup: string, runDir: string, cniNetwork: string, containerdSocket: string, ctr: string } | undefined}
 */
export function nodeInfo() {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'node', 'info.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Imports an OCI image archive (an OCI layout in a tar) into the node's containerd, where the kubelet
 * finds it: pods then run it with imagePullPolicy IfNotPresent or Never, and nothing is pulled.
 * @param {string} archive
 */
export function importImage(archive) {
  const node = nodeInfo();
  if (!node) throw new Error('no node is running: npm run cluster:up');
  const r = spawnSync(
    node.ctr,
    // Pinned, as the node's own images: the kubelet never garbage-collects what it cannot pull again.
    [
      '--address',
      node.containerdSocket,
      '-n',
      'k8s.io',
      'images',
      'import',
      '--label',
      'io.cri-containerd.pinned=pinned',
      archive,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`importing ${archive} failed: ${r.stderr}`);
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
    } else if (cmd === 'import' && flags[0]) {
      importImage(resolve(flags[0]));
    } else {
      process.stderr.write('usage: cluster.mjs up [--quiet] | down | build | import <oci-archive.tar>\n');
      process.exit(2);
    }
  } catch (err) {
    process.stderr.write(`cluster: ${err.message}\n`);
    process.exit(1);
  }
}

/**
 * One more kube-apiserver of the running cluster (its etcd, CA and keys) on a free port, with these
 * extra flags: an API server of a highly available cluster configured differently from its peer.
 * Resolves once it is ready with its address, an admin kubeconfig for it, and stop().
 */
export async function startExtraApiServer(flags = []) {
  if (!existsSync(join(stateDir, 'etcd-url')))
    throw new Error(
      'the running cluster predates `kubecluster apiserver`: cluster:down, then up, restarts it',
    );
  const port = await freePort();
  const out = openSync(join(stateDir, `apiserver-${port}.log`), 'a', 0o600);
  const child = spawn(binary, ['apiserver', stateDir, String(port), ...flags], {
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const server = `https://127.0.0.1:${port}`;
  const kubeconfig = join(stateDir, `apiserver-${port}.kubeconfig`);
  const admin = readFileSync(clusterInfo().kubeconfig, 'utf8');
  writeFileSync(kubeconfig, admin.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: ${server}`), {
    mode: 0o600,
  });
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(kubeconfig, { force: true });
  };
  const started = Date.now();
  while (!readyz(kubeconfig)) {
    if (child.exitCode !== null) {
      const tail = readFileSync(join(stateDir, `apiserver-${port}.log`), 'utf8')
        .split('\n')
        .slice(-20);
      await stop();
      throw new Error(`the extra API server exited during start:\n${tail.join('\n')}`);
    }
    if (Date.now() - started > 120_000) {
      await stop();
      throw new Error('the extra API server is not ready after 120 s');
    }
    await sleep(200);
  }
  return { server, kubeconfig, stop };
}

/** @returns {Promise<number>} a port free on 127.0.0.1 a moment ago */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => (port ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}
