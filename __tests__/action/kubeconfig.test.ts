// The kubeconfig the action writes: valid for the real kubectl, and readable back by post.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGrantCredential } from '../../src/action/kubeconfig-credential.js';
import { renderKubeconfig } from '../../src/action/kubeconfig.js';
import { exchangeResponse, TOKEN } from './support/fakes.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'k8s-ea-kc-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('renderKubeconfig', () => {
  test('kubectl reads the context, namespace, server and token from it', () => {
    const grant = exchangeResponse();
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, renderKubeconfig(grant, 'ci-ctx'), { mode: 0o600 });
    const jsonpath = (expr: string) =>
      spawnSync(
        'kubectl',
        ['--kubeconfig', path, 'config', 'view', '--raw', '--minify', '-o', `jsonpath=${expr}`],
        {
          encoding: 'utf8',
        },
      );
    expect(jsonpath('{.current-context}').stdout).toBe('ci-ctx');
    expect(jsonpath('{.contexts[0].context.namespace}').stdout).toBe('team-a');
    expect(jsonpath('{.clusters[0].cluster.server}').stdout).toBe('https://127.0.0.1:6443');
    expect(jsonpath('{.users[0].user.token}').stdout).toBe(TOKEN);
    expect(jsonpath('{.clusters[0].cluster.certificate-authority-data}').stdout).toBe(
      grant.certificateAuthorityData,
    );
  });

  test('post reads back exactly the credential main wrote', () => {
    const grant = exchangeResponse();
    expect(readGrantCredential(renderKubeconfig(grant, 'ctx'))).toEqual({
      server: grant.server,
      certificateAuthorityData: grant.certificateAuthorityData,
      token: grant.token,
      namespace: grant.namespace,
    });
  });

  test('without a CA the file names none (kubectl uses the system roots) and post reads it back', () => {
    const grant = { ...exchangeResponse(), certificateAuthorityData: '' };
    const text = renderKubeconfig(grant, 'ctx');
    expect(text).not.toContain('certificate-authority');
    expect(readGrantCredential(text)).toEqual({
      server: grant.server,
      certificateAuthorityData: '',
      token: grant.token,
      namespace: grant.namespace,
    });
  });

  test('a file that is not such a kubeconfig yields nothing rather than a wrong credential', () => {
    expect(readGrantCredential('')).toBeUndefined();
    expect(readGrantCredential('{ not: [yaml')).toBeUndefined();
    const doc = JSON.parse(renderKubeconfig(exchangeResponse(), 'ctx')) as Record<string, unknown>;
    expect(readGrantCredential(JSON.stringify({ ...doc, 'current-context': 'other' }))).toBeUndefined();
  });

  test('the file is JSON (what main writes), and post still reads the YAML an earlier version wrote', () => {
    const grant = exchangeResponse();
    const text = renderKubeconfig(grant, 'ctx');
    expect(JSON.parse(text)).toMatchObject({ kind: 'Config', 'current-context': 'ctx' });
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `  - name: ctx`,
      `    cluster: { server: '${grant.server}', certificate-authority-data: ${grant.certificateAuthorityData} }`,
      'users:',
      `  - name: ctx`,
      `    user: { token: ${grant.token} }`,
      'contexts:',
      `  - name: ctx`,
      `    context: { cluster: ctx, user: ctx, namespace: ${grant.namespace} }`,
      'current-context: ctx',
    ].join('\n');
    expect(readGrantCredential(yaml)).toEqual(readGrantCredential(text));
  });
});

describe('credentials: exec', () => {
  test('the user runs the plugin and holds no token; post reads the token from the cache instead', () => {
    const grant = exchangeResponse();
    const plugin = {
      command: '/runner/externals/node24/bin/node',
      args: ['/a/dist/credential/index.js', '/t/c.json'],
    };
    const text = renderKubeconfig(grant, 'ci-ctx', plugin);
    expect(text).not.toContain(TOKEN);
    const path = join(dir, 'kubeconfig-exec');
    writeFileSync(path, text, { mode: 0o600 });
    const exec = spawnSync(
      'kubectl',
      ['--kubeconfig', path, 'config', 'view', '--minify', '-o', 'jsonpath={.users[0].user.exec}'],
      { encoding: 'utf8' },
    );
    expect(exec.status).toBe(0);
    expect(JSON.parse(exec.stdout)).toMatchObject({
      apiVersion: 'client.authentication.k8s.io/v1',
      command: plugin.command,
      args: plugin.args,
      interactiveMode: 'Never',
    });
    expect(readGrantCredential(text)).toBeUndefined();
    expect(readGrantCredential(text, 'cached.token')).toMatchObject({
      token: 'cached.token',
      server: grant.server,
    });
  });
});
