// Input parsing: defaults, and an error that names the input and the fix for every bad value.
import { describe, expect, test } from '@jest/globals';
import { InputError, parseInputs } from '../../src/action/inputs.js';
import { DEFAULT_AUDIENCE } from '../../src/shared/api.js';

const env = { RUNNER_TEMP: '/runner/_temp', GITHUB_WORKSPACE: '/runner/work/repo/repo' };
const base = { 'broker-url': 'https://broker.example.com', namespace: 'team-a', role: 'deployer' };
const parse = (inputs: Record<string, string>, e: Record<string, string | undefined> = env) =>
  parseInputs((name) => inputs[name] ?? '', e);

describe('parseInputs', () => {
  test('applies the documented defaults', () => {
    const i = parse(base);
    expect(i.brokerUrl.href).toBe('https://broker.example.com/');
    expect(i.audience).toBe(DEFAULT_AUDIENCE);
    expect(i.contextName).toBe('deployer@team-a');
    expect(i.ttlSeconds).toBeUndefined();
    expect(i.kubeconfigPath).toBeUndefined();
    expect(i.exportKubeconfig).toBe(true);
    expect(i.exportKubeConfigPath).toBe(true);
    expect(i.jobSummary).toBe(true);
    expect(i.revoke).toBe(true);
    expect(i.credentials).toBe('static');
    expect(i.brokerCa).toBeUndefined();
    expect(i.runnerTemp).toBe('/runner/_temp');
    expect(Object.isFrozen(i)).toBe(true);
  });

  test('the default context name differs per namespace and role', () => {
    expect(parse({ ...base, namespace: 'team-b', role: 'viewer' }).contextName).toBe('viewer@team-b');
  });

  test('reads every input', () => {
    const i = parse({
      ...base,
      audience: 'my-broker',
      ttl: '900',
      'context-name': 'prod',
      'kubeconfig-path': '/runner/_temp/kc',
      'export-kubeconfig': 'false',
      'export-kube-config-path': 'false',
      'job-summary': 'false',
      'broker-ca': '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----',
      revoke: 'FALSE',
    });
    expect(i).toMatchObject({
      audience: 'my-broker',
      ttlSeconds: 900,
      contextName: 'prod',
      kubeconfigPath: '/runner/_temp/kc',
      exportKubeconfig: false,
      exportKubeConfigPath: false,
      jobSummary: false,
      revoke: false,
    });
    expect(i.brokerCa).toContain('BEGIN CERTIFICATE');
  });

  test.each([
    [{ 'broker-url': '' }, /Input "broker-url" is required/],
    [{ 'broker-url': 'not a url' }, /Input "broker-url" is not a URL/],
    [{ 'broker-url': 'http://broker.example.com' }, /Input "broker-url" must use https:\/\//],
    [{ 'broker-url': 'https://user:pw@broker.example.com' }, /must not contain credentials/],
    [{ 'broker-url': 'ftp://127.0.0.1' }, /must use https/],
    [{ namespace: '' }, /Input "namespace" is required/],
    [{ namespace: 'Team_A' }, /Input "namespace" must be a Kubernetes namespace name/],
    [{ namespace: 'a'.repeat(64) }, /Input "namespace"/],
    [{ role: '' }, /Input "role" is required/],
    [{ role: 'admin role' }, /Input "role" must be a role name/],
    [{ ttl: '15m' }, /Input "ttl" must be a whole number of seconds/],
    [{ ttl: '10' }, /Input "ttl" must be between 60 and 21600/],
    [{ ttl: '90000' }, /Input "ttl" must be between/],
    [{ 'context-name': 'a b' }, /Input "context-name"/],
    [{ 'kubeconfig-path': 'relative/kc' }, /Input "kubeconfig-path" must be an absolute path/],
    [{ 'kubeconfig-path': '/runner/work/repo/repo/kubeconfig' }, /must be outside GITHUB_WORKSPACE/],
    [{ 'kubeconfig-path': '/runner/work/repo/repo/../repo/sub/kc' }, /must be outside GITHUB_WORKSPACE/],
    [{ 'export-kubeconfig': 'yes' }, /Input "export-kubeconfig" must be true or false/],
    [{ revoke: 'no' }, /Input "revoke" must be true or false/],
    [{ credentials: 'Exec' }, /Input "credentials" must be static or exec, got "Exec"/],
    [{ 'broker-ca': '/etc/ssl/ca.pem' }, /Input "broker-ca" must be PEM/],
    [{ audience: 'a b' }, /Input "audience" must not contain whitespace/],
  ])('rejects %j', (override, message) => {
    expect(() => parse({ ...base, ...override })).toThrow(InputError);
    expect(() => parse({ ...base, ...override })).toThrow(message);
  });

  test('accepts plain http only for a broker on the same host', () => {
    expect(parse({ ...base, 'broker-url': 'http://127.0.0.1:8080' }).brokerUrl.port).toBe('8080');
    expect(parse({ ...base, 'broker-url': 'http://localhost:8080/prefix' }).brokerUrl.pathname).toBe(
      '/prefix',
    );
  });

  test('a kubeconfig path next to (not inside) the workspace is accepted', () => {
    expect(parse({ ...base, 'kubeconfig-path': '/runner/work/repo/repo-other/kc' }).kubeconfigPath).toBe(
      '/runner/work/repo/repo-other/kc',
    );
  });

  test('refuses to run without RUNNER_TEMP', () => {
    expect(() => parse(base, { GITHUB_WORKSPACE: '/w' })).toThrow(/RUNNER_TEMP is not set/);
  });
});
