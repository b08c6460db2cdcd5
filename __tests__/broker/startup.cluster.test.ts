// What the built broker says when it starts, under the deploy/ RBAC: the port it took, a warning (and a
// gauge) when runners would get an in-cluster API server address, and a refusal naming the TLS Secret
// when the certificate files are missing.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { startBrokerEnv, type BrokerEnv } from '../../test/support/fixture.js';

let env: BrokerEnv;
beforeAll(async () => {
  env = await startBrokerEnv();
});
afterAll(() => env?.cleanup());

const gauge = (text: string) => /^k8s_ea_cluster_server_in_cluster (\S+)$/m.exec(text)?.[1];

test('a Service name handed to runners: a warning naming the fix, and the gauge at 1', async () => {
  const broker = await env.startBroker({ config: { clusterServer: 'https://kubernetes.default.svc' } });
  const warning = broker.stderr
    .map((l) => JSON.parse(l) as Record<string, string>)
    .find((l) => l.level === 'warn' && l.msg?.includes('only the cluster reaches'));
  expect(warning).toMatchObject({
    server: 'https://kubernetes.default.svc',
    fix: expect.stringContaining('clusterServer'),
  });
  expect(gauge((await broker.internalGet('/metrics')).text)).toBe('1');
});

test('an address runners reach: no warning, the gauge at 0; with port 0 the log names the port taken', async () => {
  const broker = await env.startInProcessBroker(); // listens on port 0
  // The messages, not a boolean: a failure then says which warning it was.
  expect(broker.logLines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([]);
  expect(gauge(await broker.metrics.registry.metrics())).toBe('0');
  const listening = broker.logLines.find((l) => l.msg === 'broker listening')!;
  const port = Number(new URL(listening.url as string).port);
  expect(port).toBeGreaterThan(0);
  expect(port).toBe(Number(new URL(broker.url).port));
});

test('missing TLS files: the broker exits naming the Secret, its mount and the command', async () => {
  const absent = join('/nonexistent', 'k8s-ea-tls');
  const start = env.startBroker({
    config: { tls: { certFile: join(absent, 'tls.crt'), keyFile: join(absent, 'tls.key') } },
  });
  const err = await start.then(
    () => new Error('the broker started'),
    (e: unknown) => e as Error,
  );
  expect(err.message).toMatch(/^broker exited with 1 before ready:\n/);
  const line = JSON.parse(err.message.split('\n')[1]!) as { msg: string; error: string };
  expect(line.msg).toBe('broker failed to start');
  expect(line.error).toContain('tls.certFile: "/nonexistent/k8s-ea-tls/tls.crt" is not a readable file');
  expect(line.error).toMatch(/Secret k8s-ea-broker-tls .* at \/etc\/k8s-ea-tls/);
  expect(line.error).toContain('kubectl create secret tls k8s-ea-broker-tls');
});
