// The test cluster's node parts, each built from its pinned Go module into the cache beside the
// control plane binary (<cache>/bin/node), once: containerd 2 (with its runc shim and ctr), runc (cgo,
// with seccomp), the CNI plugins, and the node's images (pause and the test workload, built from
// test/cluster/images as one-binary OCI archives; nothing is ever pulled).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The pinned node parts: Go module@version and the commands built from it. */
export const NODE_PARTS = {
  containerd: {
    module: 'github.com/containerd/containerd/v2@v2.4.2',
    packages: ['cmd/containerd', 'cmd/containerd-shim-runc-v2', 'cmd/ctr'],
  },
  runc: { module: 'github.com/opencontainers/runc@v1.5.3', packages: ['.'], cgo: true, tags: 'seccomp' },
  cni: {
    module: 'github.com/containernetworking/plugins@v1.10.0',
    packages: [
      'plugins/main/bridge',
      'plugins/main/loopback',
      'plugins/ipam/host-local',
      'plugins/meta/portmap',
    ],
    subdir: 'cni',
  },
};

/**
 * The node's images, by name: each is the one binary built from test/cluster/images/<name>, its
 * reference and user. images.json is their one source (the cluster program and the tests read it).
 * @type {Record<string, { ref: string, user: string }>}
 */
export const NODE_IMAGES = JSON.parse(
  readFileSync(new URL('../test/cluster/images/images.json', import.meta.url), 'utf8'),
);

/** The one command to run when a prerequisite of the node is missing (Debian/Ubuntu). */
export const NODE_PREREQUISITES_COMMAND = 'apt-get install -y iptables libseccomp-dev gcc';

/**
 * What the node needs from the host, checked before anything is built or started: root (namespaces,
 * mounts, cgroups), iptables (kube-proxy, portmap), ip and sysctl, and to build runc gcc and libseccomp.
 * Returns the missing ones.
 */
export function missingNodePrerequisites() {
  const missing = [];
  if (process.getuid?.() !== 0) missing.push('root (the node creates namespaces, mounts and cgroups)');
  for (const cmd of ['iptables', 'ip', 'sysctl', 'gcc']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) missing.push(cmd);
  }
  if (!existsSync('/usr/include/seccomp.h')) missing.push('libseccomp-dev (seccomp.h, to build runc)');
  return missing;
}

function partsStamp(moduleDir) {
  const h = createHash('sha256').update(JSON.stringify({ NODE_PARTS, NODE_IMAGES }));
  for (const name of Object.keys(NODE_IMAGES)) {
    const dir = join(moduleDir, 'images', name);
    for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  }
  return h.digest('hex');
}

/**
 * @param {string[]} args
 * @param {{ cwd?: string, env: Record<string, string> }} options
 * @returns {Promise<void>}
 */
function goRun(args, { cwd, env }) {
  return new Promise((resolveRun, reject) => {
    const child = spawn('go', args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) =>
      code === 0
        ? resolveRun(undefined)
        : reject(new Error(`go ${args.join(' ')} failed:\n${err.slice(-4000)}`)),
    );
  });
}

/**
 * Builds the node parts into <binDir>/node unless an up-to-date build is there; `kubecluster` (built
 * already) writes the image archives. Returns that directory.
 */
export async function buildNode({ binDir, moduleDir, kubecluster, log }) {
  const nodeDir = join(binDir, 'node');
  const stampFile = join(nodeDir, 'node.stamp');
  const stamp = partsStamp(moduleDir);
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return nodeDir;
  const missing = missingNodePrerequisites();
  if (missing.length > 0)
    throw new Error(`the node needs ${missing.join(', ')}: run \`${NODE_PREREQUISITES_COMMAND}\` as root`);
  rmSync(nodeDir, { recursive: true, force: true });
  mkdirSync(join(nodeDir, 'images'), { recursive: true });
  const started = Date.now();
  log('building the node: containerd, runc, CNI plugins (first time: a few minutes on 2 cores)');
  const ldflags = '-s -w -buildid=';
  for (const [name, part] of Object.entries(NODE_PARTS)) {
    const [mod, version] = part.module.split('@');
    const pkgs = part.packages.map((p) => `${p === '.' ? mod : `${mod}/${p}`}@${version}`);
    const tags = part.tags ? ['-tags', part.tags] : [];
    await goRun(['install', '-trimpath', '-ldflags', ldflags, ...tags, ...pkgs], {
      env: { GOBIN: join(nodeDir, part.subdir ?? ''), CGO_ENABLED: part.cgo ? '1' : '0' },
    });
    log(`  ${name} built (${Math.round((Date.now() - started) / 1000)} s)`);
  }
  for (const [name, img] of Object.entries(NODE_IMAGES)) {
    const out = join(nodeDir, 'build', name);
    await goRun(['build', '-trimpath', '-ldflags', ldflags, '-o', out, `./images/${name}`], {
      cwd: moduleDir,
      env: { CGO_ENABLED: '0' },
    });
    const archive = join(nodeDir, 'images', `${name}.tar`);
    const r = spawnSync(kubecluster, ['oci-image', archive, img.ref, out, img.user], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`oci-image ${img.ref} failed: ${r.stderr}`);
  }
  writeFileSync(join(nodeDir, 'images.json'), JSON.stringify(NODE_IMAGES));
  writeFileSync(stampFile, stamp);
  log(`node built in ${Math.round((Date.now() - started) / 1000)} s`);
  return nodeDir;
}
