// The broker's command line (issue 14): help everywhere exits 0, every wrong command line exits 2
// with one clear line, and `--config F` without a command still means serve.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, test } from '@jest/globals';
import { ensureBrokerBuilt } from '../../../test/support/ensure-built.js';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { COMMANDS } from '../../../src/broker/cli/run-cli.js';
import { cli, tempFiles } from './support/cli.js';

const files = tempFiles();
afterAll(() => files.cleanup());
const POLICY = 'deploy/examples/policy.yaml';

describe('help', () => {
  test.each([[['--help']], [['-h']], [['policy', '--help']], [['rbac', '-h']]])(
    '%j prints the command list and exits 0',
    async (argv) => {
      const run = await cli(argv);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      for (const c of COMMANDS.filter((c) =>
        c.name.startsWith(argv[0] === '-h' || argv[0] === '--help' ? '' : argv[0]!),
      ))
        expect(run.stdout).toContain(c.name);
    },
  );

  test.each(COMMANDS.map((c) => [c.name]))('%s --help prints its usage and exits 0', async (name) => {
    const run = await cli([...name.split(' '), '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^usage: ${name} `));
    expect(run.stdout).toContain('exit codes:');
  });

  test('--help wins over a missing required option', async () => {
    expect((await cli(['policy', 'test', POLICY, '--help'])).code).toBe(0);
  });
});

describe('usage errors exit 2 with one line on stderr', () => {
  const claims = files.write('claims.json', '{}');
  test.each([
    [[], /^usage: /],
    [['frobnicate'], /^unknown command "frobnicate"/],
    [
      ['policy', 'frob'],
      /^unknown command "policy frob" \(commands: policy check, policy test, policy advise;/,
    ],
    [['policy', 'check'], /^policy check: missing argument/],
    [['policy', 'check', POLICY, 'extra'], /^policy check: unexpected argument "extra"/],
    [['policy', 'check', POLICY, '--frob'], /Unknown option '--frob'/],
    [['policy', 'test', POLICY, '--namespace', 'staging', '--role', 'viewer'], /--claims is required/],
    [['policy', 'test', POLICY, '--claims', claims, '--role', 'viewer'], /--namespace is required/],
    [
      [
        'policy',
        'test',
        POLICY,
        '--claims',
        claims,
        '--namespace',
        'staging',
        '--role',
        'viewer',
        '--ttl',
        '5m',
      ],
      /--ttl must be a number of seconds, got "5m"/,
    ],
    [
      ['policy', 'test', POLICY, '--claims', '/nonexistent/claims.json', '--namespace', 's', '--role', 'r'],
      /cannot read .*ENOENT/,
    ],
    [
      ['policy', 'test', POLICY, '--claims', files.write('bad.json', '{'), '--namespace', 's', '--role', 'r'],
      /is not JSON/,
    ],
    [
      [
        'policy',
        'test',
        POLICY,
        '--claims',
        files.write('list.json', '[]'),
        '--namespace',
        's',
        '--role',
        'r',
      ],
      /one JSON object/,
    ],
    [['rbac', 'generate', POLICY, '--name', 'Not_A_Label'], /--name: "Not_A_Label" is not a DNS-1123 label/],
    [['rbac', 'check', POLICY], /--kubeconfig is required/],
    [['serve'], /^serve: --config is required/],
    [['--config'], /argument missing/],
  ])('%j', async (argv, message) => {
    const run = await cli(argv);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    if (argv.length > 0) expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('serve', () => {
  test('--config without a command is serve: a missing config file fails to start with exit 1', async () => {
    const run = await cli(['--config', '/nonexistent/broker-config.yaml']);
    expect(run.code).toBe(1);
    const line = JSON.parse(run.stderr) as Record<string, string>;
    expect(line.msg).toBe('broker failed to start');
    expect(line.error).toContain('cannot read the config file (ENOENT)');
  });

  test('serve --config is the same', async () => {
    const run = await cli(['serve', '-c', '/nonexistent/broker-config.yaml']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('cannot read the config file (ENOENT)');
  });
});

describe('the built bundle', () => {
  test('its exit codes are the command line exit codes (help 0, usage 2, a valid policy 0, a refusal 1)', async () => {
    const entry = await ensureBrokerBuilt();
    const run = (...args: string[]) => spawnSync(process.execPath, [entry, ...args], { encoding: 'utf8' });
    expect(run('--help').status).toBe(0);
    expect(run().status).toBe(2);
    expect(run('policy', 'check', POLICY).status).toBe(0);
    const claims = files.write('pr.json', JSON.stringify(defaultClaims({ event_name: 'pull_request' })));
    const refused = run(
      'policy',
      'test',
      POLICY,
      '--claims',
      claims,
      '--namespace',
      'staging',
      '--role',
      'viewer',
    );
    expect(refused.status).toBe(1);
    expect(refused.stdout).toMatch(/^refused \(no_matching_rule\)/);
  });
});
