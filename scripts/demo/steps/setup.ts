// Steps 2 to 5: the bundles, the namespaces with the broker's RBAC from deploy/, the stand-in for
// GitHub's token service, and the broker with the example policy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { startBroker } from '../../../test/support/broker.js';
import { installBrokerRbac, RBAC_FILES } from '../../../test/support/deploy-rbac.js';
import { coreApi, rbacApi } from '../../../test/support/cluster.js';
import { startOidcIssuer } from '../../../test/support/oidc-issuer.js';
import { BROKER_BUNDLE, brokerBundlePath, ensureBundles, repoRoot } from '../bundles.js';
import type { DemoContext } from '../context.js';
import type { DemoStep } from '../run-steps.js';

const DEMO_LABEL = 'k8s-ephemeral-access.demo/owner';
const EXAMPLE_JOB_ROLES = ['k8s-ea-deployer', 'k8s-ea-viewer'];

export const checkBundles: DemoStep<DemoContext> = {
  title: "Check the action's committed bundles (dist/) and build the broker's (build/broker/)",
  async run({ transcript: t }) {
    for (const line of await ensureBundles()) t.line(line);
  },
};

export const createNamespaceAndRbac: DemoStep<DemoContext> = {
  title: (ctx) => `Create namespace ${ctx.jobNamespace} and install the broker's RBAC from deploy/`,
  async run(ctx) {
    const { transcript: t, cleanup, jobNamespace, brokerNamespace } = ctx;
    const core = coreApi();
    await core.createNamespace({
      body: { metadata: { name: jobNamespace, labels: { [DEMO_LABEL]: 'demo' } } },
    });
    cleanup.push(`deleted namespace ${jobNamespace}`, async () => {
      await core.deleteNamespace({ name: jobNamespace });
    });
    const rbac = rbacApi();
    const missingRoles: string[] = [];
    for (const name of EXAMPLE_JOB_ROLES)
      if (
        !(await rbac.readClusterRole({ name }).then(
          () => true,
          () => false,
        ))
      )
        missingRoles.push(name);
    const installed = await installBrokerRbac([jobNamespace], { brokerNamespace });
    cleanup.push(`deleted the broker's RBAC and namespace ${brokerNamespace}`, () => installed.cleanup());
    // On a cluster the user brought, remove the example job roles again if this run added them.
    if (ctx.options.kubeconfig)
      for (const name of missingRoles)
        cleanup.push(`deleted ClusterRole ${name}`, async () => {
          await rbac.deleteClusterRole({ name });
        });
    t.line(`broker identity: system:serviceaccount:${brokerNamespace}:${installed.serviceAccount}`);
    t.line(`applied from deploy/: ${RBAC_FILES.join(', ')}`);
    t.line(
      `(namespace "staging" in deploy/ is ${jobNamespace} here, "k8s-ephemeral-access" is ${brokerNamespace})`,
    );
    ctx.put('rbac', installed);
  },
};

export const startIssuer: DemoStep<DemoContext> = {
  title: 'Start a local OIDC issuer standing in for GitHub Actions',
  async run(ctx) {
    const { transcript: t, cleanup } = ctx;
    const started = await startOidcIssuer();
    cleanup.push('stopped the OIDC issuer', () => started.close());
    const c = started.claims;
    t.line(`issuer ${started.issuer} (discovery, JWKS, RS256; and the runner's ID-token endpoint)`);
    t.line(`the job: ${c.repository} (repository_id ${c.repository_id}, owner_id ${c.repository_owner_id})`);
    t.line(
      `         run ${c.run_id} attempt ${c.run_attempt}, workflow "${c.workflow}", ${c.event_name} to ${c.ref}, actor ${c.actor}`,
    );
    ctx.put('issuer', started);
  },
};

export const startBrokerWithExamplePolicy: DemoStep<DemoContext> = {
  title: `Start the broker (${BROKER_BUNDLE}) with deploy/examples/policy.yaml`,
  async run(ctx) {
    const { transcript: t, cleanup, jobNamespace } = ctx;
    const issuer = ctx.get('issuer');
    const policy = load(readFileSync(join(repoRoot, 'deploy/examples/policy.yaml'), 'utf8')) as {
      rules: { name: string; namespaces: string[] }[];
    };
    for (const rule of policy.rules)
      rule.namespaces = rule.namespaces.map((n) => (n === 'staging' ? jobNamespace : n));
    const started = await startBroker({
      policyYaml: dump(policy),
      issuer: issuer.issuer,
      namespaces: [jobNamespace],
      rbac: ctx.get('rbac'),
      https: true,
      reaperIntervalSeconds: 5,
      entry: brokerBundlePath(),
    });
    cleanup.push('stopped the broker', async () => {
      await started.stop();
    });
    t.line(`listening on ${started.url} (HTTPS, self-signed certificate passed to the action as broker-ca)`);
    t.line(`trusts issuer ${issuer.issuer}, audience k8s-ephemeral-access`);
    t.line(`policy rules: ${policy.rules.map((r) => r.name).join(', ')}`);
    ctx.put('broker', started);
    ctx.put(
      'brokerCa',
      readFileSync(
        (load(readFileSync(started.configPath, 'utf8')) as { tls: { certFile: string } }).tls.certFile,
        'utf8',
      ),
    );
  },
};
