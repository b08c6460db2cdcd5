// Direct mode's shared self-revoke Role (src/broker/grants/shared-self-revoke.ts) against the real API
// server, with deploy/self-revoke-guard.yaml installed as an admin installs it and the broker under the
// deploy/ RBAC (plus deploy/self-revoke-guard-reader.yaml). Negative first: with the shared Role, a
// grant cannot delete another grant's ServiceAccount or RoleBindings, nor any other ServiceAccount or
// binding, nor the shared Role, nor touch the guard; it can delete its own (the post step's fallback,
// unchanged). Through an API server that stores the guard but does not enforce it (one more API
// server of the cluster, its ValidatingAdmissionPolicy plugin off), the broker's probe finds that out
// and keeps the pair. With the guard's binding set to Warn, or the policy removed, the broker makes
// the per-grant pair again (log line and metric) and takes the shared Role away; with the guard back
// it binds the shared Role again. Revocation and the reaper leave nothing of either kind behind.
//
// The guard is cluster-wide: this file holds the broker-install lock (fresh-cluster and the chart's
// install also install and remove it), and other files' brokers cannot read it (their RBAC lacks the
// reader), so they keep making the pair whatever this file does.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExchangeResponse } from '../../../src/shared/api.js';
import { revokeDirect } from '../../../src/action/direct-revoke.js';
import {
  PART_LABEL,
  revokeObjectName,
  SELF_REVOKE_GUARD,
  SELF_REVOKE_PROBE_PART,
  SELF_REVOKE_ROLE,
} from '../../../src/broker/naming.js';
import {
  clusterEndpoint,
  kubectl,
  kubectlAdmin,
  kubectlStatus,
  rbacApi,
  tokenKubeconfig,
  tryKubectlAdmin,
  waitFor,
} from '../../../test/support/cluster.js';
import { lockBrokerInstall } from '../../../test/support/broker-install-lock.js';
import { startExtraApiServer, type ExtraApiServer } from '../../../test/support/extra-apiserver.js';
import { selfRevokeGuardReaderFor, setSelfRevokeGuardActions } from '../../../test/support/deploy-rbac.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';
import { managedObjects } from '../../../test/support/managed-objects.js';
import { repoRoot } from '../../../test/support/repo-root.js';

const deployFile = (f: string) => readFileSync(join(repoRoot, 'deploy', f), 'utf8');
/** The enforcement probe's canary objects (src/broker/grants/self-revoke-probe.ts). */
const probeLabel = `${PART_LABEL}=${SELF_REVOKE_PROBE_PART}`;

let env: BrokerEnv;
let broker: InProcessBroker;
let unlock: (() => void) | undefined;
let readerYaml = '';
/** The broker's clock runs this far ahead once the reaper's part comes. */
let clockOffsetMs = 0;
const cleanups: (() => void)[] = [];

const applyGuard = () => kubectlAdmin(['apply', '-f', '-'], deployFile('self-revoke-guard.yaml'));
/** A grant-shaped identity's deletion is refused by the guard (the API server enforces it now). */
async function guardEnforced(namespace: string): Promise<void> {
  await waitFor('the API server to enforce the guard', () => {
    const r = tryKubectlAdmin([
      `--as=system:serviceaccount:${namespace}:gha-${'0'.repeat(32)}`,
      '--as-group=system:masters',
      '-n',
      namespace,
      'delete',
      'serviceaccount',
      'default',
      '--dry-run=server',
    ]);
    return r.status !== 0 && r.stderr.includes(SELF_REVOKE_GUARD) ? true : undefined;
  });
}

const sharedGauge = async () => (await broker.metrics.selfRevokeShared.get()).values[0]?.value;
const waitForMechanism = (shared: boolean) =>
  waitFor(
    `the broker to ${shared ? 'bind the shared Role' : 'fall back to the pair'}`,
    async () => ((await sharedGauge()) === (shared ? 1 : 0) ? true : undefined),
    40_000,
    200,
  );

beforeAll(async () => {
  unlock = await lockBrokerInstall('shared-self-revoke');
  env = await startBrokerEnv({ namespaces: ['shared-revoke'] });
  readerYaml = selfRevokeGuardReaderFor(env.rbac.brokerNamespace);
  kubectlAdmin(['apply', '-f', '-'], readerYaml);
  applyGuard();
  await guardEnforced(env.ns);
  broker = await env.startInProcessBroker({
    reaperIntervalSeconds: 1,
    now: () => Date.now() + clockOffsetMs,
  });
  await waitForMechanism(true);
}, 120_000);

afterAll(async () => {
  cleanups.forEach((c) => c());
  await env?.cleanup();
  tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], deployFile('self-revoke-guard.yaml'));
  if (readerYaml) tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], readerYaml);
  unlock?.();
}, 120_000);

async function exchange(): Promise<ExchangeResponse> {
  const r = await broker.request<ExchangeResponse>('POST', '/v1/exchange', {
    token: await env.issuer.sign(),
    body: { namespace: env.ns, role: 'viewer', ttlSeconds: 600 },
  });
  expect(r.status).toBe(200);
  await waitFor('the self-revoke RoleBinding', () =>
    rbacApi()
      .readNamespacedRoleBinding({ name: revokeObjectName(r.body.grantId), namespace: env.ns })
      .then(
        (rb) => rb,
        () => undefined,
      ),
  );
  return r.body;
}

const revokeBindingOf = (grantId: string) =>
  rbacApi().readNamespacedRoleBinding({ name: revokeObjectName(grantId), namespace: env.ns });
const ownRevokeRole = (grantId: string) =>
  rbacApi()
    .readNamespacedRole({ name: revokeObjectName(grantId), namespace: env.ns })
    .then(
      () => true,
      () => false,
    );

const sharedRoleExists = () =>
  rbacApi()
    .readNamespacedRole({ name: SELF_REVOKE_ROLE, namespace: env.ns })
    .then(
      () => true,
      () => false,
    );

function kubeconfigOf(token: string): string {
  const kc = tokenKubeconfig(token, env.ns);
  cleanups.push(kc.cleanup);
  return kc.path;
}

/** The refusal of `args` as the grant, and by whom: RBAC (no permission) or the guard. */
function refused(kc: string, args: string[]): { status?: number; by: 'guard' | 'rbac' | 'other' } {
  const s = kubectlStatus(kc, args);
  expect([args.join(' '), s.ok]).toEqual([args.join(' '), false]);
  const by = s.stderr.includes(SELF_REVOKE_GUARD)
    ? 'guard'
    : /cannot delete|cannot patch|cannot/.test(s.stderr)
      ? 'rbac'
      : 'other';
  return { status: s.status, by };
}

const grants: Record<string, ExchangeResponse> = {};

describe('with the guard enforcing, grants bind one shared self-revoke Role', () => {
  test('each grant binds the shared Role (no Role of its own); the Role is managed and owned by no grant', async () => {
    grants.a = await exchange();
    grants.b = await exchange();
    for (const g of [grants.a, grants.b]) {
      expect((await revokeBindingOf(g.grantId)).roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: SELF_REVOKE_ROLE,
      });
      expect(await ownRevokeRole(g.grantId)).toBe(false);
    }
    const role = await rbacApi().readNamespacedRole({ name: SELF_REVOKE_ROLE, namespace: env.ns });
    expect(role.metadata?.ownerReferences ?? []).toEqual([]);
    // The enforcement probe that came first (its canary refused by the guard) left nothing.
    expect(
      kubectlAdmin([
        '-n',
        env.ns,
        'get',
        'serviceaccounts,roles,rolebindings',
        '-l',
        probeLabel,
        '-o',
        'name',
      ]),
    ).toBe('');
    expect(role.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'k8s-ephemeral-access' });
    expect(role.rules?.map((r) => [r.resources, r.verbs, r.resourceNames])).toEqual([
      [['rolebindings'], ['delete'], undefined],
      [['serviceaccounts'], ['delete'], undefined],
    ]);
  });

  test("a grant cannot delete another grant's ServiceAccount or RoleBindings, other ServiceAccounts or bindings, the shared Role, or the guard", () => {
    const { a, b } = grants as { a: ExchangeResponse; b: ExchangeResponse };
    kubectlAdmin(['-n', env.ns, 'create', 'serviceaccount', 'app']);
    // Named like the grant's self-revoke binding, but a ServiceAccount: not one of its own objects.
    kubectlAdmin(['-n', env.ns, 'create', 'serviceaccount', revokeObjectName(a.grantId)]);
    kubectlAdmin([
      '-n',
      env.ns,
      'create',
      'rolebinding',
      'app-view',
      '--clusterrole=view',
      '--serviceaccount',
      `${env.ns}:app`,
    ]);
    const kc = kubeconfigOf(a.token);
    // The shared Role allows these at the RBAC level: the guard is what refuses them.
    for (const args of [
      ['delete', 'serviceaccount', b.grantId],
      ['delete', 'rolebinding', b.grantId],
      ['delete', 'rolebinding', revokeObjectName(b.grantId)],
      ['delete', 'serviceaccount', 'app'],
      ['delete', 'serviceaccount', 'default'],
      ['delete', 'rolebinding', 'app-view'],
      ['delete', 'rolebinding', 'k8s-ea-broker'],
      // A name built like its own in another way: its access binding's name + "-revoke" only.
      ['delete', 'serviceaccount', revokeObjectName(a.grantId)],
    ])
      expect([args.join(' '), refused(kc, args)]).toEqual([args.join(' '), { status: 403, by: 'guard' }]);
    for (const args of [
      ['delete', 'role', SELF_REVOKE_ROLE],
      ['patch', 'role', SELF_REVOKE_ROLE, '--type=merge', '-p', '{"rules":[]}'],
      ['delete', 'validatingadmissionpolicy', SELF_REVOKE_GUARD],
      ['delete', 'validatingadmissionpolicybinding', SELF_REVOKE_GUARD],
      [
        'patch',
        'validatingadmissionpolicybinding',
        SELF_REVOKE_GUARD,
        '--type=merge',
        '-p',
        '{"spec":{"validationActions":["Warn"]}}',
      ],
      ['delete', 'serviceaccount', 'default', '-n', 'kube-system'],
    ])
      expect([args.join(' '), refused(kc, args).status]).toEqual([args.join(' '), 403]);
    // Nothing was deleted.
    for (const [kind, name] of [
      ['serviceaccount', b.grantId],
      ['rolebinding', b.grantId],
      ['rolebinding', revokeObjectName(b.grantId)],
      ['serviceaccount', 'app'],
      ['serviceaccount', revokeObjectName(a.grantId)],
      ['rolebinding', 'app-view'],
      ['role', SELF_REVOKE_ROLE],
    ])
      expect(tryKubectlAdmin(['-n', env.ns, 'get', kind!, name!]).status).toBe(0);
  });

  // Red team: the shared Role's permission is broad at the RBAC level, so RBAC's escalation check lets a
  // grant that may write RBAC objects pass it on: bind the shared Role (or a Role of its own with the
  // same rules) to an identity the guard does not match (any non-grant ServiceAccount, e.g. one its
  // pods run as), which then deletes any ServiceAccount or binding. The broker refuses policy roles
  // that write RBAC (role vetting), but not what a grant holds through its groups: here a RoleBinding
  // for every ServiceAccount of the namespace (system:serviceaccounts:<ns>). With the per-grant pair
  // the grant's Role named only its own objects, so passing it on gave nothing.
  test('a grant that may write RBAC objects (through its groups) cannot pass the shared permission to an identity the guard skips', () => {
    const { a, b } = grants as { a: ExchangeResponse; b: ExchangeResponse };
    const writer = `rbac-writer-${a.grantId}`;
    kubectlAdmin(['-n', env.ns, 'create', 'role', writer, '--verb=create', '--resource=rolebindings,roles']);
    kubectlAdmin([
      '-n',
      env.ns,
      'create',
      'rolebinding',
      writer,
      `--role=${writer}`,
      `--group=system:serviceaccounts:${env.ns}`,
    ]);
    try {
      const kc = kubeconfigOf(a.token);
      const app = `--serviceaccount=${env.ns}:app`;
      // The guard refuses binding the shared Role (RBAC would allow it: the group may create bindings).
      const passOn = kubectlStatus(kc, [
        'create',
        'rolebinding',
        'passed-on',
        `--role=${SELF_REVOKE_ROLE}`,
        app,
      ]);
      expect([passOn.ok, passOn.stderr]).toEqual([
        false,
        expect.stringMatching(/may not bind the shared self-revoke Role/),
      ]);
      // What remains (docs/operations.md): a copy of the rules in a Role of its own, bound by the
      // same group permission: only with the permissions the admin gave the group.
      // Whatever got through: the guard does not narrow a non-grant identity.
      const asApp = tryKubectlAdmin([
        `--as=system:serviceaccount:${env.ns}:app`,
        '-n',
        env.ns,
        'delete',
        'serviceaccount',
        b.grantId,
        '--dry-run=server',
      ]);
      expect(asApp.status).not.toBe(0);
    } finally {
      for (const [kind, name] of [
        ['rolebinding', writer],
        ['role', writer],
        ['rolebinding', 'passed-on'],
        ['role', 'passed-on'],
      ])
        tryKubectlAdmin(['-n', env.ns, 'delete', kind!, name!, '--ignore-not-found']);
    }
  });

  test("the post step's fallback (straight at the API server, the grant's own token) deletes its own grant", async () => {
    const a = grants.a!;
    const { server, caData } = clusterEndpoint();
    const result = await revokeDirect({
      server,
      certificateAuthorityData: caData,
      token: a.token,
      namespace: env.ns,
      grantId: a.grantId,
    });
    expect(result).toEqual({ roleBinding: 'deleted', serviceAccount: 'deleted' });
    // Its self-revoke binding goes with its ServiceAccount (owner reference); the other grant stays.
    await waitFor('the garbage collector', () =>
      revokeBindingOf(a.grantId).then(
        () => undefined,
        () => true,
      ),
    );
    expect((await revokeBindingOf(grants.b!.grantId)).roleRef.name).toBe(SELF_REVOKE_ROLE);
  });
});

describe('an API server that stores the guard but does not enforce it (its admission plugin off)', () => {
  let extra: ExtraApiServer | undefined;
  let other: BrokerEnv | undefined;
  let otherReader = '';
  let unenforced: InProcessBroker;
  beforeAll(async () => {
    // One API server of an HA cluster started without the plugin, and a broker whose kubeconfig
    // reaches that one; in a namespace of its own, so its fall-back leaves this file's broker be.
    extra = await startExtraApiServer(['--disable-admission-plugins=ValidatingAdmissionPolicy']);
    other = await startBrokerEnv({ namespaces: ['shared-revoke-unenforced'] });
    otherReader = selfRevokeGuardReaderFor(other.rbac.brokerNamespace);
    kubectlAdmin(['apply', '-f', '-'], otherReader);
    const kubeconfigPath = `${other.rbac.kubeconfigPath}.unenforced`;
    writeFileSync(
      kubeconfigPath,
      readFileSync(other.rbac.kubeconfigPath, 'utf8').replace(/server: \S+/, `server: ${extra.server}`),
    );
    unenforced = await other.startInProcessBroker({ rbac: { ...other.rbac, kubeconfigPath } });
  }, 120_000);
  afterAll(async () => {
    await other?.cleanup();
    if (otherReader) tryKubectlAdmin(['delete', '-f', '-', '--ignore-not-found'], otherReader);
    await extra?.stop();
  }, 120_000);

  test('the guard reads exactly as shipped there, yet is not enforced: the probe finds it, grants get the pair, no canary is left', async () => {
    const ns = other!.ns;
    // What the red team found: through that API server a grant identity may delete what is not its own.
    const asGrant = kubectl(extra!.kubeconfig, [
      `--as=system:serviceaccount:${ns}:gha-${'0'.repeat(32)}`,
      '--as-group=system:masters',
      ...['-n', ns, 'delete', 'serviceaccount', 'default', '--dry-run=server'],
    ]);
    expect([asGrant.status, asGrant.stderr]).toEqual([0, '']);

    const refusal = await waitFor('the probe to find the guard unenforced', () =>
      unenforced.logLines.find(
        (l) => l.msg === 'the self-revoke guard is not proven to enforce: grants get the per-grant pair',
      ),
    );
    expect(refusal.problems).toEqual([expect.stringMatching(/does not enforce the guard/)]);
    const r = await unenforced.request<ExchangeResponse>('POST', '/v1/exchange', {
      token: await other!.issuer.sign(),
      body: { namespace: ns, role: 'viewer', ttlSeconds: 600 },
    });
    expect(r.status).toBe(200);
    const binding = await waitFor('the self-revoke RoleBinding', () =>
      rbacApi()
        .readNamespacedRoleBinding({ name: revokeObjectName(r.body.grantId), namespace: ns })
        .catch(() => undefined),
    );
    expect(binding.roleRef.name).toBe(revokeObjectName(r.body.grantId));
    expect(
      kubectlAdmin(['-n', ns, 'get', 'serviceaccounts,rolebindings,roles', '-l', probeLabel, '-o', 'name']),
    ).toBe('');
    expect(kubectlAdmin(['-n', ns, 'get', 'roles', '-o', 'name'])).not.toContain(SELF_REVOKE_ROLE);
  });
});

describe('without an enforcing guard the broker makes the per-grant pair', () => {
  test('binding set to Warn: log line, metric 0, the shared Role taken away, new grants get the pair', async () => {
    setSelfRevokeGuardActions(['Warn']);
    await waitForMechanism(false);
    expect(
      broker.logLines.filter(
        (l) => l.level === 'warn' && String(l.msg).includes('self-revoke guard is not enforcing'),
      ),
    ).toHaveLength(1);
    await waitFor('the shared Role deleted', () =>
      rbacApi()
        .readNamespacedRole({ name: SELF_REVOKE_ROLE, namespace: env.ns })
        .then(
          () => undefined,
          () => true,
        ),
    );
    // A grant still bound to the shared Role keeps no permission the guard no longer narrows.
    // (A dry run: authorized and admitted like the real deletion, which it would be if this failed.)
    const kcB = kubeconfigOf(grants.b!.token);
    const attempt = ['delete', 'serviceaccount', 'app', '--dry-run=server'];
    await waitFor(
      'the RBAC authorizer to see the Role gone',
      () => (kubectlStatus(kcB, attempt).ok ? undefined : true),
      5_000,
    );
    expect(refused(kcB, attempt)).toEqual({ status: 403, by: 'rbac' });
    grants.c = await exchange();
    expect(await ownRevokeRole(grants.c.grantId)).toBe(true);
    expect((await revokeBindingOf(grants.c.grantId)).roleRef.name).toBe(revokeObjectName(grants.c.grantId));
  });

  test('Deny again: the shared Role is back (and the earlier grants bound to it work again)', async () => {
    setSelfRevokeGuardActions(['Deny']);
    await waitForMechanism(true);
    await waitFor('the shared Role written back', () => sharedRoleExists().then((e) => e || undefined));
    grants.d = await exchange();
    expect((await revokeBindingOf(grants.d.grantId)).roleRef.name).toBe(SELF_REVOKE_ROLE);
    // b, bound to it since before, may delete its own ServiceAccount again, and still nothing else.
    const kcB = kubeconfigOf(grants.b!.token);
    const own = ['delete', 'serviceaccount', grants.b!.grantId, '--dry-run=server'];
    await waitFor(
      'the RBAC authorizer to see the Role back',
      () => (kubectlStatus(kcB, own).ok ? true : undefined),
      5_000,
    );
    expect(refused(kcB, ['delete', 'serviceaccount', 'app', '--dry-run=server'])).toEqual({
      status: 403,
      by: 'guard',
    });
  });

  // Why the guard is opt-in: it narrows every grant, also one whose role allows deleting ServiceAccounts
  // (here a Role an admin bound to the grant, as a `helm uninstall` of a chart with one would need).
  test('the policy removed: the pair again; a grant whose role allows deleting ServiceAccounts may again', async () => {
    const d = grants.d!;
    const deleter = `sa-deleter-${d.grantId}`;
    kubectlAdmin(['-n', env.ns, 'create', 'role', deleter, '--verb=delete', '--resource=serviceaccounts']);
    cleanups.push(() => tryKubectlAdmin(['-n', env.ns, 'delete', 'role', deleter, '--ignore-not-found']));
    kubectlAdmin([
      '-n',
      env.ns,
      'create',
      'rolebinding',
      deleter,
      `--role=${deleter}`,
      `--serviceaccount=${env.ns}:${d.grantId}`,
    ]);
    cleanups.push(() =>
      tryKubectlAdmin(['-n', env.ns, 'delete', 'rolebinding', deleter, '--ignore-not-found']),
    );
    const kcD = kubeconfigOf(d.token);
    const other = ['delete', 'serviceaccount', 'app', '--dry-run=server'];
    expect(refused(kcD, other)).toEqual({ status: 403, by: 'guard' });

    kubectlAdmin(['delete', 'validatingadmissionpolicy', SELF_REVOKE_GUARD]);
    await waitForMechanism(false);
    grants.e = await exchange();
    expect(await ownRevokeRole(grants.e.grantId)).toBe(true);
    await waitFor('the API server to stop enforcing the removed guard', () =>
      kubectlStatus(kcD, other).ok ? true : undefined,
    );
  });
});

describe('revocation and the reaper leave nothing behind, in both mechanisms', () => {
  test('a shared-Role grant and a pair grant revoked through the broker; the rest reaped', async () => {
    applyGuard();
    await guardEnforced(env.ns);
    await waitForMechanism(true);
    await waitFor('the shared Role written back', () => sharedRoleExists().then((e) => e || undefined));
    for (const g of [grants.d!, grants.c!]) {
      const r = await broker.request('DELETE', `/v1/grants/${g.grantId}`, { token: g.token });
      expect(r.status).toBe(200);
    }
    // b (shared) and e (pair) are left to the reaper: move the broker's clock past their expiry.
    clockOffsetMs = 3_600_000;
    await waitFor(
      'every grant gone',
      () => {
        const left = managedObjects([env.ns]).filter((o) => !o.endsWith(`/Role/${SELF_REVOKE_ROLE}`));
        return left.length === 0 ? true : undefined;
      },
      60_000,
      500,
    );
    // The shared Role belongs to no grant: it stays for the next ones.
    expect(await sharedRoleExists()).toBe(true);
  }, 90_000);
});
