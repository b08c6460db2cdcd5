// The kubeconfig the action writes: valid for the real kubectl, and readable back by post.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGrantCredential, renderKubeconfig } from '../../src/action/kubeconfig.js';
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
    const other = renderKubeconfig(exchangeResponse(), 'ctx').replace(
      'current-context: ctx',
      'current-context: other',
    );
    expect(readGrantCredential(other)).toBeUndefined();
  });
});
