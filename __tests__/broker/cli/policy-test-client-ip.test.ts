// `policy test --client-ip`: rules with sourceRanges decide on the address the broker would see, so the
// CLI agrees with the broker for a runner inside the range (policy-test-agreement.cluster.test.ts checks the
// agreement against a running broker); without the option such a rule does not match, and says why.
import { afterAll, expect, test } from '@jest/globals';
import { defaultClaims } from '../../../test/support/oidc-issuer.js';
import { policyYaml } from '../../../test/support/policy.js';
import { cli, tempFiles } from './support/cli.js';

const files = tempFiles();
afterAll(() => files.cleanup());

const POLICY = files.write(
  'policy.yaml',
  policyYaml({
    namespaces: ['staging'],
    rules: [
      {
        name: 'lan-deploys',
        roles: ['deployer'],
        maxTtlSeconds: 600,
        sourceRanges: ['10.20.0.0/16', 'fd00:20::/48'],
      },
    ],
  }),
);
const CLAIMS = files.write('claims.json', JSON.stringify(defaultClaims()));
const ask = (...more: string[]) =>
  cli([
    'policy',
    'test',
    POLICY,
    '--claims',
    CLAIMS,
    '--namespace',
    'staging',
    '--role',
    'deployer',
    ...more,
  ]);

test('an address inside a rule’s sourceRanges: allowed by it, as the broker would (IPv4 and IPv6)', async () => {
  for (const ip of ['10.20.3.4', 'fd00:20::7']) {
    const run = await ask('--client-ip', ip);
    expect({ ip, code: run.code }).toEqual({ ip, code: 0 });
    expect(run.stdout).toMatch(/^allowed by rule lan-deploys /);
  }
});

test('an address outside it: refused with the broker’s reason, and the rule says which address and ranges', async () => {
  const run = await ask('--client-ip', '192.0.2.1', '--json');
  expect(run.code).toBe(1);
  const out = JSON.parse(run.stdout) as { reason: string; rules: { problems: string[] }[] };
  expect(out.reason).toBe('source_not_allowed');
  expect(out.rules[0]!.problems).toEqual([
    'client address 192.0.2.1 is not in sourceRanges [10.20.0.0/16, fd00:20::/48]',
  ]);
});

test('no address: such a rule does not match, and the explanation names the option', async () => {
  const run = await ask();
  expect(run.code).toBe(1);
  expect(run.stdout).toContain(
    'sourceRanges [10.20.0.0/16, fd00:20::/48]: no client address given (--client-ip)',
  );
});

test('a value that is no IP address is a usage error', async () => {
  const run = await ask('--client-ip', '10.20.0.0/16');
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('--client-ip must be an IPv4 or IPv6 address, got "10.20.0.0/16"');
});
