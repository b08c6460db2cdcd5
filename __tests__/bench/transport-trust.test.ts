// The action's HTTPS transport builds its TLS context once, from the `broker-ca` alone, and falls
// back to public roots + that CA only when the broker's chain does not verify against it (the fix
// for ~80 ms of main/post start-up the benchmark found). The trust it grants must be exactly
// "public roots + broker-ca": proven with real TLS servers and two private CAs, one of them
// standing in for the public roots.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeTransport, NetworkError } from '../../src/action/http-transport.js';

let dir: string;
const servers: Server[] = [];
const pem: Record<string, string> = {};
const urls: Record<string, URL> = {};

function ssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

/** A CA, and a server certificate for 127.0.0.1 signed by it. */
function caAndServerCert(name: string): void {
  ssl(
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '1', '-subj', `/CN=${name}-ca`],
  );
  ssl(
    ...['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1'],
  );
  ssl(
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`],
    ...['-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', 'ext.cnf'],
  );
  pem[name] = readFileSync(join(dir, `${name}-ca.pem`), 'utf8');
}

async function serve(name: string): Promise<void> {
  const server = createServer(
    { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) },
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ server: name }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  urls[name] = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-trust-'));
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  caAndServerCert('private'); // the broker's own CA (the broker-ca input)
  caAndServerCert('public'); // stands in for a CA among the public roots
  caAndServerCert('stranger'); // trusted by nobody
  await Promise.all([serve('private'), serve('public'), serve('stranger')]);
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  rmSync(dir, { recursive: true, force: true });
});

const get = (url: URL) => ({ method: 'GET' as const, url, headers: {}, timeoutMs: 5_000 });

test('a broker signed by the given CA is trusted, request after request', async () => {
  const transport = createNodeTransport({ ca: pem.private, publicRoots: [pem.public!] });
  for (let i = 0; i < 3; i += 1) {
    const res = await transport(get(urls.private!));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ server: 'private' });
  }
});

test('a publicly-signed broker still works when a CA is also given (fallback to roots + CA)', async () => {
  const transport = createNodeTransport({ ca: pem.private, publicRoots: [pem.public!] });
  expect(JSON.parse((await transport(get(urls.public!))).body)).toEqual({ server: 'public' });
  // ... and after the fallback, the CA-signed broker is still trusted too.
  expect(JSON.parse((await transport(get(urls.private!))).body)).toEqual({ server: 'private' });
});

test('nothing outside public roots + the given CA is ever trusted', async () => {
  const transport = createNodeTransport({ ca: pem.private, publicRoots: [pem.public!] });
  await expect(transport(get(urls.stranger!))).rejects.toBeInstanceOf(NetworkError);
  // Without the stand-in root among the public roots, the public server is refused as well.
  const narrow = createNodeTransport({ ca: pem.private, publicRoots: [] });
  await expect(narrow(get(urls.public!))).rejects.toBeInstanceOf(NetworkError);
  // And without any CA, the private broker is refused (node's real public roots only).
  await expect(createNodeTransport()(get(urls.private!))).rejects.toBeInstanceOf(NetworkError);
});
