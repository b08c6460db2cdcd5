// A real forward proxy for the action's proxy tests: tinyproxy (the Debian package; `.ci/run`
// installs it) on a free loopback port with a generated config, its log parsed for the CONNECTs it
// served. A missing binary fails the test with the install command rather than skipping it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../../../test/support/free-port.js';

export interface ForwardProxy {
  /** http://127.0.0.1:<port>, for HTTPS_PROXY. */
  url: string;
  /** The `host:port` of every CONNECT the proxy was asked for, in order. */
  connects(): string[];
  stop(): Promise<void>;
}

export async function startTinyproxy(): Promise<ForwardProxy> {
  const which = spawnSync('tinyproxy', ['-v'], { encoding: 'utf8' });
  if (which.error || which.status !== 0)
    throw new Error(
      'tinyproxy is not installed; the proxy tests need a real forward proxy: apt-get install -y tinyproxy',
    );
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-proxy-'));
  const port = await freePort();
  const log = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 30',
      `LogFile "${log}"`,
      // Connect level logs each request line, which is what the tests read.
      'LogLevel Connect',
      'MaxClients 50',
      'Allow 127.0.0.1',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await waitForPort(port, 10_000);
  return {
    url: `http://127.0.0.1:${port}`,
    connects: () => {
      let text: string;
      try {
        text = readFileSync(log, 'utf8');
      } catch {
        return [];
      }
      return [...text.matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((m) => m[1]!);
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`tinyproxy did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * An address of this machine that is not loopback: the action never sends loopback traffic through
 * a proxy, so servers the tests reach through one must listen on another address.
 */
export function nonLoopbackIPv4(): string {
  for (const addresses of Object.values(networkInterfaces()))
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('the proxy tests need a non-loopback IPv4 address on this machine; none found');
}
