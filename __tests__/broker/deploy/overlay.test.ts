// The kustomize overlay example (examples/admin/kustomize-overlay/), rendered with the real kubectl: every file
// the broker config names reaches the pod where the config expects it (the extra CA files in the config
// ConfigMap next to broker-config.yaml, the gateway's own certificate from its Secret), the policy keeps its
// fixed name (hot reload), the image is the overlay's, and the Service is exposed to the runners only.
import { expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig } from '../../../src/broker/config/load-config.js';
import { repoRoot } from '../../../test/support/repo-root.js';
import { kustomize, type Doc } from './support/chart.js';

const OVERLAY = join(repoRoot, 'examples', 'admin', 'kustomize-overlay');

interface Mount {
  name: string;
  mountPath: string;
}
interface Volume {
  name: string;
  secret?: { secretName: string };
  projected?: { sources: { configMap: { name: string } }[] };
}

test('the overlay renders, and every file its config names is in the pod where the config looks for it', () => {
  const docs = kustomize(OVERLAY);
  const dep = docs.find((d) => d.kind === 'Deployment') as Doc & {
    spec: {
      template: {
        spec: { volumes: Volume[]; containers: { image: string; args: string[]; volumeMounts: Mount[] }[] };
      };
    };
  };
  const pod = dep.spec.template.spec;
  const container = pod.containers[0]!;
  expect(container.image).toBe('registry.example.com/k8s-ea-broker:0.1.0');

  // What each mount path holds: ConfigMap keys (projected volumes) or a Secret's tls.crt / tls.key.
  const configMaps = new Map(
    docs
      .filter((d) => d.kind === 'ConfigMap')
      .map((d) => [d.metadata.name, (d as Doc & { data: Record<string, string> }).data]),
  );
  const files = new Map<string, string>();
  for (const m of container.volumeMounts) {
    const v = pod.volumes.find((x) => x.name === m.name)!;
    for (const s of v.projected?.sources ?? [])
      for (const [key, text] of Object.entries(configMaps.get(s.configMap.name) ?? {}))
        files.set(join(m.mountPath, key), text);
    if (v.secret)
      for (const key of ['tls.crt', 'tls.key']) files.set(join(m.mountPath, key), v.secret.secretName);
  }
  const configPath = container.args[1]!;
  expect(container.args[0]).toBe('--config');

  // The config as the broker reads it, with every file it names where the pod would have it.
  const root = mkdtempSync(join(tmpdir(), 'k8s-ea-overlay-'));
  try {
    for (const [path, text] of files) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    const text = files.get(configPath)!.replaceAll('/etc/', `${root}/etc/`);
    const config = parseConfig(text, join(root, configPath));
    const named = [
      config.clusterCaFile,
      config.gateway?.caFile,
      config.gateway?.tls?.certFile,
      config.gateway?.tls?.keyFile,
      config.tls?.certFile,
      config.tls?.keyFile,
      config.policyFile,
    ];
    expect(named.every((f) => typeof f === 'string')).toBe(true);
    const inPod = (f: string) => f.slice(root.length);
    expect(named.map((f) => [inPod(f!), files.has(inPod(f!))])).toEqual(named.map((f) => [inPod(f!), true]));
    expect(files.get(inPod(config.gateway!.tls!.certFile))).toBe('k8s-ea-gateway-tls');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }

  // The policy under its fixed name (updated in place, hot-reloaded); the config hashed (a change rolls).
  expect([...configMaps.keys()].sort()).toEqual([
    expect.stringMatching(/^k8s-ea-broker-config-[a-z0-9]{10}$/),
    'k8s-ea-broker-policy',
  ]);

  const svc = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'k8s-ea-broker') as Doc & {
    spec: Record<string, unknown>;
  };
  expect(svc.spec).toMatchObject({
    type: 'LoadBalancer',
    externalTrafficPolicy: 'Local',
    loadBalancerSourceRanges: ['203.0.113.0/24', '198.51.100.0/24'],
  });
});
