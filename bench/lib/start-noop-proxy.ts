// Starts bench/lib/noop-proxy.mjs in front of the API server, with a throwaway certificate, as
// its own process (as the broker is): the reference hop the gateway is compared with.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { selfSignedCert } from '../../test/support/tls.js';

const SCRIPT = fileURLToPath(new URL('./noop-proxy.mjs', import.meta.url));

export interface NoopProxy {
  url: string;
  /** Verifies the proxy's certificate. */
  ca: Buffer;
  pid: number;
  stop(): Promise<void>;
}

export async function startNoopProxy(upstream: { server: string; ca: Buffer }): Promise<NoopProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-ea-noop-proxy-'));
  const tls = selfSignedCert(dir);
  const caFile = join(dir, 'upstream-ca.crt');
  writeFileSync(caFile, upstream.ca);
  const child = spawn(process.execPath, [SCRIPT, tls.certFile, tls.keyFile, upstream.server, caFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the no-op proxy exited (${code}) before listening`)));
  });
  return {
    url: `https://127.0.0.1:${port}`,
    ca: tls.ca,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
