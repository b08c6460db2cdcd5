// The broker's Kubernetes clients keep their TLS connections (src/broker/kube/connection.ts), the
// fix for the exchange-throughput gap the benchmark found: client-node's API objects and the JSON
// calls of the exchange's and revocation's hot path, over one pooled dispatcher. Proven by
// counting TLS handshakes on a local HTTPS endpoint (plain client-node's KubeConfig is the
// negative control: one handshake per call), and against the real API server with
// client-certificate and bearer-token identities.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { createK8sClients, loadKubeConfig } from '../../src/broker/kube/clients.js';
import { CONNECTION_LIMITS, KubeConnection } from '../../src/broker/kube/connection.js';
import { adminKubeconfigPath, freshNamespace } from '../../test/support/cluster.js';
import { installBrokerRbac, type BrokerRbac } from '../../test/support/deploy-rbac.js';
import { selfSignedCert } from '../../test/support/tls.js';

describe('TLS connection reuse against a counting endpoint', () => {
  let dir: string;
  let server: Server;
  let handshakes = 0;
  let requests = 0;
  let ca: Buffer;
  let kubeconfig: () => KubeConfig;
  let fileNo = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ea-reuse-'));
    const tls = selfSignedCert(dir);
    server = createServer(
      { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
      (req, res) => {
        requests += 1;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'ServiceAccountList', apiVersion: 'v1', metadata: {}, items: [] }));
      },
    );
    server.on('secureConnection', () => (handshakes += 1));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    ca = tls.ca;
    kubeconfig = () => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: ca.toString('base64') }],
        users: [{ name: 'u', token: 'not-a-real-token' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      return kc;
    };
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Makes `n` sequential calls through the API object `make` builds. */
  async function callsThrough(
    make: () => CoreV1Api,
    n: number,
  ): Promise<{ handshakes: number; requests: number }> {
    const before = { handshakes, requests };
    const api = make();
    for (let i = 0; i < n; i += 1) await api.listNamespacedServiceAccount({ namespace: 'default' });
    return { handshakes: handshakes - before.handshakes, requests: requests - before.requests };
  }

  /** The broker's loader (src/broker/kube/clients.ts), reading a file exactly as the broker does. */
  const brokerKubeConfig = (): KubeConfig => {
    const path = join(dir, `kubeconfig-${(fileNo += 1)}`);
    writeFileSync(path, kubeconfig().exportConfig(), { mode: 0o600 });
    return loadKubeConfig(path);
  };

  test('plain client-node opens a new TLS connection per call (the cost the fix removes)', async () => {
    const r = await callsThrough(() => kubeconfig().makeApiClient(CoreV1Api), 5);
    expect(r.requests).toBe(5);
    expect(r.handshakes).toBe(5);
  });

  test("the broker's client-node API objects make their calls over kept-alive connections", async () => {
    const r = await callsThrough(() => createK8sClients(brokerKubeConfig()).core, 8);
    expect(r.requests).toBe(8);
    // undici may open a second connection while the first response is still being released;
    // after that every call reuses the pool.
    expect(r.handshakes).toBeGreaterThanOrEqual(1);
    expect(r.handshakes).toBeLessThanOrEqual(2);
  });

  /** `n` sequential DELETEs with DeleteOptions in the body, as revocation and the reaper send them. */
  async function deletesThrough(
    api: CoreV1Api,
    n: number,
  ): Promise<{ handshakes: number; requests: number }> {
    const before = { handshakes, requests };
    for (let i = 0; i < n; i += 1)
      await api.deleteNamespacedServiceAccount({
        namespace: 'default',
        name: `sa-${i}`,
        body: { preconditions: { uid: `uid-${i}` }, propagationPolicy: 'Background' },
      });
    return { handshakes: handshakes - before.handshakes, requests: requests - before.requests };
  }

  test('DELETEs with a body keep their connection too (undici closes it unless told not to)', async () => {
    const controlPath = join(dir, 'kubeconfig-delete-control');
    writeFileSync(controlPath, kubeconfig().exportConfig(), { mode: 0o600 });
    const controlKc = loadKubeConfig(controlPath);
    const control = createK8sClients(controlKc, new KubeConnection(controlKc, CONNECTION_LIMITS, [])).core;
    const r = await deletesThrough(createK8sClients(brokerKubeConfig()).core, 8);
    expect(r.requests).toBe(8);
    expect(r.handshakes).toBeGreaterThanOrEqual(1);
    expect(r.handshakes).toBeLessThanOrEqual(2);
    // The control: the same pooled dispatcher without the interceptor, one handshake per DELETE.
    const c = await deletesThrough(control, 5);
    expect(c.requests).toBe(5);
    expect(c.handshakes).toBe(5);
  });

  /** `n` sequential calls of the broker's hot path (its JSON calls), reads or DELETEs with a body. */
  async function hotPathCalls(
    kind: 'read' | 'delete',
    n: number,
  ): Promise<{ handshakes: number; requests: number }> {
    const before = { handshakes, requests };
    const api = createK8sClients(brokerKubeConfig()).hotPath;
    for (let i = 0; i < n; i += 1)
      if (kind === 'read') await api.readNamespacedServiceAccount({ namespace: 'default', name: `sa-${i}` });
      else
        await api.deleteNamespacedServiceAccount({
          namespace: 'default',
          name: `sa-${i}`,
          body: { preconditions: { uid: `uid-${i}` }, propagationPolicy: 'Background' },
        });
    return { handshakes: handshakes - before.handshakes, requests: requests - before.requests };
  }

  test("the hot path's JSON calls make sequential reads and DELETEs over one connection", async () => {
    expect(await hotPathCalls('read', 8)).toEqual({ handshakes: 1, requests: 8 });
    expect(await hotPathCalls('delete', 8)).toEqual({ handshakes: 1, requests: 8 });
  });

  test("the hot path's concurrent calls open one connection each at most, then reuse them", async () => {
    const before = handshakes;
    const api = createK8sClients(brokerKubeConfig()).hotPath;
    const read = () => api.readNamespacedServiceAccount({ namespace: 'a', name: 'x' });
    await Promise.all(Array.from({ length: 4 }, read));
    const afterBurst = handshakes - before;
    expect(afterBurst).toBeGreaterThanOrEqual(1);
    expect(afterBurst).toBeLessThanOrEqual(4);
    for (let i = 0; i < 6; i += 1) await read();
    await Promise.all(Array.from({ length: 4 }, read));
    expect(handshakes - before).toBe(afterBurst);
  });

  test('concurrent calls share the pool instead of each building their own', async () => {
    const before = handshakes;
    const api = createK8sClients(brokerKubeConfig()).core;
    await Promise.all(Array.from({ length: 4 }, () => api.listNamespacedServiceAccount({ namespace: 'a' })));
    for (let i = 0; i < 6; i += 1) await api.listNamespacedServiceAccount({ namespace: 'a' });
    // At most one connection per call in flight at the same time (+1, see above), then all reused.
    expect(handshakes - before).toBeLessThanOrEqual(5);
    expect(handshakes - before).toBeGreaterThanOrEqual(1);
  });
});

describe('idle connections', () => {
  let dir: string;
  let server: Server;
  let handshakes = 0;
  let path: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'k8s-ea-idle-'));
    const tls = selfSignedCert(dir);
    server = createServer(
      { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'ServiceAccountList', apiVersion: 'v1', metadata: {}, items: [] }));
      },
    );
    // Like the API server: keeps idle connections and sends no Keep-Alive hint (Node's server
    // would advertise its own timeout, which undici would follow instead of its default).
    server.keepAliveTimeout = 0;
    server.on('secureConnection', () => (handshakes += 1));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: 'c',
          server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
          caData: tls.ca.toString('base64'),
        },
      ],
      users: [{ name: 'u', token: 'not-a-real-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    path = join(dir, 'kubeconfig');
    writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test("a connection idle longer than undici's default (4 s) is still reused", async () => {
    const api = createK8sClients(loadKubeConfig(path)).core;
    // The hot path beside it, on a connection of its own, idle just as long.
    const hotPath = createK8sClients(loadKubeConfig(path)).hotPath;
    const read = () => hotPath.readNamespacedServiceAccount({ namespace: 'default', name: 'x' });
    await api.listNamespacedServiceAccount({ namespace: 'default' });
    await read();
    const before = handshakes;
    expect(before).toBe(2);
    await new Promise((r) => setTimeout(r, 5_000));
    await api.listNamespacedServiceAccount({ namespace: 'default' });
    await read();
    expect(handshakes).toBe(before);
  }, 30_000);
});

describe('against the real API server', () => {
  let ns: { name: string; remove: () => Promise<void> };
  let rbac: BrokerRbac;

  beforeAll(async () => {
    ns = await freshNamespace('bench-reuse');
    rbac = await installBrokerRbac([ns.name]);
  }, 60_000);

  afterAll(async () => {
    await rbac?.cleanup();
    await ns?.remove();
  });

  test('client-certificate identity (admin kubeconfig): repeated calls succeed', async () => {
    const k8s = createK8sClients(loadKubeConfig(adminKubeconfigPath()));
    for (let i = 0; i < 3; i += 1) {
      const list = await k8s.core.listNamespacedServiceAccount({ namespace: ns.name });
      expect(Array.isArray(list.items)).toBe(true);
    }
  });

  test("bearer-token identity (the broker's RBAC): allowed calls succeed, forbidden ones are still refused", async () => {
    const k8s = createK8sClients(loadKubeConfig(rbac.kubeconfigPath));
    const name = `reuse-${Math.random().toString(16).slice(2, 8)}`;
    await k8s.core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
    const read = await k8s.core.readNamespacedServiceAccount({ namespace: ns.name, name });
    expect(read.metadata?.name).toBe(name);
    // The reused connection carries the same identity: what the broker may not do stays forbidden.
    await expect(k8s.core.listNamespacedSecret({ namespace: ns.name })).rejects.toMatchObject({ code: 403 });
    await k8s.core.deleteNamespacedServiceAccount({ namespace: ns.name, name });
  });

  test("the hot path's JSON calls, bearer-token identity: the same calls, the same refusals", async () => {
    const { hotPath } = createK8sClients(loadKubeConfig(rbac.kubeconfigPath));
    const name = `lean-${Math.random().toString(16).slice(2, 8)}`;
    const created = await hotPath.createNamespacedServiceAccount({
      namespace: ns.name,
      body: { metadata: { name } },
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    const read = await hotPath.readNamespacedServiceAccount({ namespace: ns.name, name });
    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    await expect(
      hotPath.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } }),
    ).rejects.toMatchObject({ code: 409 });
    // Outside the broker's namespaces the reused connection carries the same identity: refused.
    await expect(
      hotPath.readNamespacedServiceAccount({ namespace: 'kube-system', name: 'default' }),
    ).rejects.toMatchObject({ code: 403 });
    await hotPath.deleteNamespacedServiceAccount({
      namespace: ns.name,
      name,
      body: { preconditions: { uid: created.metadata?.uid } },
    });
    await expect(hotPath.readNamespacedServiceAccount({ namespace: ns.name, name })).rejects.toMatchObject({
      code: 404,
    });
  });

  test("the hot path's JSON calls, client-certificate identity (admin kubeconfig)", async () => {
    const { hotPath } = createK8sClients(loadKubeConfig(adminKubeconfigPath()));
    const read = await hotPath.readNamespacedServiceAccount({ namespace: 'kube-system', name: 'default' });
    expect(read.metadata?.name).toBe('default');
  });
});
