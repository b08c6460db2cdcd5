// The test cluster's node runs real pods: the kubelet starts the local test image through containerd
// and runc, the bridge CNI gives them addresses in the node's own network namespace, kube-proxy
// routes Services to them, and the kubelet projects ServiceAccount tokens and ConfigMaps.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import {
  adminKubeconfigPath,
  freshNamespace,
  kubectlAdmin,
  uniqueName,
  waitFor,
} from '../../test/support/cluster.js';
import {
  describeOnNode,
  nodeInfo,
  testContainer,
  TEST_IMAGE,
  waitPodsReady,
  waitRoutedTo,
} from '../../test/support/node.js';

let ns: { name: string; remove: () => Promise<void> };
const app = 'web';
let nodePort = 0;
let applied = 0;

const apply = (obj: object) => kubectlAdmin(['-n', ns.name, 'apply', '-f', '-'], JSON.stringify(obj));

/** GET on the node's NodePort from this process (the machine's side of the node's link). */
async function viaNode(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${nodeInfo().nodeIP}:${nodePort}${path}`, {
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: await res.text() };
}

const podOf = (label: string) =>
  kubectlAdmin([
    '-n',
    ns.name,
    'get',
    'pods',
    '-l',
    `app=${label}`,
    '-o',
    'jsonpath={.items[0].metadata.name}',
  ]);

describeOnNode('the node', () => {
  beforeAll(async () => {
    ns = await freshNamespace('node');
    apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { value: 'one' } });
    applied = Date.now();
    apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: app },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app } },
        template: {
          metadata: { labels: { app } },
          spec: {
            containers: [
              testContainer({ volumeMounts: [{ name: 'settings', mountPath: '/config', readOnly: true }] }),
            ],
            volumes: [{ name: 'settings', configMap: { name: 'settings' } }],
          },
        },
      },
    });
    apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: app },
      spec: { type: 'NodePort', selector: { app }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    nodePort = Number(
      kubectlAdmin(['-n', ns.name, 'get', 'svc', app, '-o', 'jsonpath={.spec.ports[0].nodePort}']),
    );
  }, 30_000);

  afterAll(async () => {
    await ns?.remove();
  });

  test('a Deployment of the local test image becomes Running and Ready on the node, nothing pulled', async () => {
    await waitPodsReady(adminKubeconfigPath(), ns.name, `app=${app}`);
    console.log(`the Deployment's pod was Ready ${Date.now() - applied} ms after the apply`);
    const pod = JSON.parse(kubectlAdmin(['-n', ns.name, 'get', 'pod', podOf(app), '-o', 'json'])) as {
      spec: { nodeName: string };
      status: { phase: string; containerStatuses: { ready: boolean; image: string; imageID: string }[] };
    };
    expect(pod.spec.nodeName).toBe(nodeInfo().name);
    expect(pod.status.phase).toBe('Running');
    expect(pod.status.containerStatuses[0]).toMatchObject({ ready: true, image: TEST_IMAGE });
    const events = kubectlAdmin([
      '-n',
      ns.name,
      'get',
      'events',
      '-o',
      'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
    ]);
    // The kubelet reports "Pulled" for an image that was already there; "Pulling" is a real pull.
    expect(events).not.toMatch(/^(Pulling|ErrImagePull|ErrImageNeverPull|Failed):/m);
    expect(events).toMatch(/^Pulled: Container image "k8s-ea\.test\/testapp:1" already present on machine/m);
  }, 150_000);

  test('a NodePort Service reaches the pod from this machine; a ClusterIP reaches it from another pod', async () => {
    const server = podOf(app);
    const podIP = kubectlAdmin(['-n', ns.name, 'get', 'pod', server, '-o', 'jsonpath={.status.podIP}']);
    await waitRoutedTo(ns.name, app, [podIP]);
    const fromHost = await viaNode('/whoami');
    expect(fromHost.status).toBe(200);
    expect(JSON.parse(fromHost.body)).toMatchObject({ hostname: server, uid: 65532 });

    const client = uniqueName('client');
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: client, labels: { app: client } },
      spec: { containers: [testContainer()] },
    });
    await waitPodsReady(adminKubeconfigPath(), ns.name, `app=${client}`);
    const clusterIP = kubectlAdmin(['-n', ns.name, 'get', 'svc', app, '-o', 'jsonpath={.spec.clusterIP}']);
    const viaService = kubectlAdmin([
      '-n',
      ns.name,
      'exec',
      client,
      '--',
      '/testapp',
      'get',
      `http://${clusterIP}/whoami`,
    ]);
    expect(JSON.parse(viaService)).toMatchObject({ hostname: server });
  }, 120_000);

  test("the pod's projected ServiceAccount token works against the API server through the kubernetes Service", async () => {
    const identity = JSON.parse((await viaNode('/api-identity')).body) as Record<string, unknown>;
    expect(identity).toMatchObject({
      status: 201,
      username: `system:serviceaccount:${ns.name}:default`,
      server: expect.stringMatching(/^https:\/\/10\.0\.0\.1:443\//),
    });
    const claims = JSON.parse((await viaNode('/token-claims')).body) as { aud: string[]; exp: number };
    expect(claims.aud).toEqual(['https://kubernetes.default.svc.cluster.local']);
    expect(claims.exp * 1000).toBeGreaterThan(Date.now());
  });

  test('a ConfigMap update reaches the mounted volume within the kubelet sync period (measured)', async () => {
    expect((await viaNode('/file?path=/config/value')).body).toBe('one');
    const changed = Date.now();
    kubectlAdmin(['-n', ns.name, 'patch', 'configmap', 'settings', '-p', '{"data":{"value":"two"}}']);
    await waitFor(
      'the new value in the volume',
      async () => ((await viaNode('/file?path=/config/value')).body === 'two' ? true : undefined),
      90_000,
      200,
    );
    console.log(`ConfigMap update reached the pod's volume in ${Date.now() - changed} ms`);
  }, 100_000);
});
