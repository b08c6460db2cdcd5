// Steps 6 to 9: the job as the GitHub runner runs it: the action's main step, a later step's kubectl
// (one call the role allows, one it does not), and the action's post step.
import { existsSync, readFileSync } from 'node:fs';
import { decodeJwt } from 'jose';
import { load } from 'js-yaml';
import { managedObjects } from '../../../test/support/managed-objects.js';
import { createJob, type StepResult } from '../../../test/support/runner.js';
import { type DemoContext, MARKERS } from '../context.js';
import { kubectlHttpStatus, type KubeconfigDoc } from '../kube.js';
import { PostStep } from '../post-step.js';
import type { DemoStep } from '../run-steps.js';
import type { Transcript } from '../transcript.js';

/** What the runner's log would show for a step: its lines with every registered secret masked. */
function showStepLog(t: Transcript, step: StepResult): void {
  const mask = (text: string) => step.masks.reduce((acc, m) => (m ? acc.split(m).join('***') : acc), text);
  for (const l of mask(step.log).split('\n')) if (l.trim() !== '') t.line(`| ${l}`);
  for (const l of mask(step.stderr).split('\n')) if (l.trim() !== '') t.line(`| (stderr) ${l}`);
}

export const runMainStep: DemoStep<DemoContext> = {
  title: "Run the action's main step (dist/main/index.js) as the GitHub runner does",
  async run(ctx) {
    const { transcript: t, cleanup } = ctx;
    const issuer = ctx.get('issuer');
    const job = createJob({ idToken: { url: issuer.idTokenRequestUrl, token: issuer.idTokenRequestToken } });
    cleanup.push("removed the runner's temporary directories", () => job.cleanup());
    const post = ctx.put('post', new PostStep(job));
    cleanup.push('ran the post step (revoke + shred)', async () => {
      const result = await post.runUnlessDone();
      if (!result) return 'nothing-to-do';
      showStepLog(t, result);
    });
    ctx.put('job', job);

    const inputs = {
      'broker-url': ctx.get('broker').url,
      'broker-ca': ctx.get('brokerCa'),
      namespace: ctx.jobNamespace,
      role: 'deployer',
      ttl: '600',
    };
    t.line('uses: octo-org/k8s-ephemeral-access@v1');
    t.line('with:');
    for (const [k, v] of Object.entries(inputs))
      t.line(`  ${k}: ${k === 'broker-ca' ? "<the broker's CA certificate>" : v}`);
    const run = job.main(inputs);
    post.mainStarted(run);
    const main = await run;
    showStepLog(t, main);
    if (main.exitCode !== 0)
      throw new Error(`the main step failed (exit ${main.exitCode}): ${main.errors.join('; ')}`);
    const kubeconfigPath = main.outputs.kubeconfig!;
    // Kept in memory only, for the rejection check after post; never printed.
    const doc = load(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigDoc;
    const token = doc.users?.[0]?.user?.token;
    if (!token) throw new Error('the written kubeconfig has no token');
    const credentialId = `JTI=${String(decodeJwt(token).jti)}`;
    const grantId = main.outputs['grant-id']!;
    t.line('outputs:');
    for (const [k, v] of Object.entries(main.outputs)) t.line(`  ${k}: ${v}`);
    t.result(
      MARKERS.granted,
      `grant ${grantId} = system:serviceaccount:${main.outputs.namespace}:${main.outputs['service-account']}, ` +
        `credential ${credentialId}, expires ${main.outputs['expires-at']} (the token itself is masked and never printed)`,
    );
    ctx.put('grant', { kubeconfigPath, token, credentialId, grantId, namespace: main.outputs.namespace! });
  },
};

export const allowedCall: DemoStep<DemoContext> = {
  title: 'A later step runs kubectl with the exported KUBECONFIG: an allowed call',
  async run(ctx) {
    const { transcript: t } = ctx;
    const job = ctx.get('job');
    const whoami = await job.exec('kubectl', [
      'auth',
      'whoami',
      '-o',
      'jsonpath={.status.userInfo.username}',
    ]);
    t.line(`$ kubectl auth whoami   -> ${whoami.stdout.trim() || whoami.stderr.trim()}`);
    const r = await job.exec('kubectl', [
      'create',
      'configmap',
      'hello-from-ci',
      '--from-literal=greeting=hello',
    ]);
    t.line(`$ kubectl create configmap hello-from-ci --from-literal=greeting=hello`);
    t.line(`${(r.stdout + r.stderr).trim()}`);
    if (r.code !== 0)
      throw new Error('kubectl create configmap was refused, but the deployer role allows it');
    t.result(
      MARKERS.allowed,
      `created configmap/hello-from-ci in ${ctx.get('grant').namespace} (role deployer allows configmaps)`,
    );
  },
};

export const deniedCall: DemoStep<DemoContext> = {
  title: 'The same kubectl, outside the role: a denied call',
  async run(ctx) {
    const { transcript: t } = ctx;
    const r = await ctx.get('job').exec('kubectl', ['get', 'secrets']);
    t.line('$ kubectl get secrets');
    t.line(`${(r.stdout + r.stderr).trim()}`);
    if (r.code === 0 || kubectlHttpStatus(r) !== 403)
      throw new Error(`expected 403 Forbidden for secrets, got exit ${r.code}: ${r.stderr.trim()}`);
    t.result(MARKERS.denied, 'secrets are forbidden (403): no job role can read Secrets');
  },
};

export const runPostStep: DemoStep<DemoContext> = {
  title: "Run the action's post step (dist/post/index.js): revoke and shred",
  async run(ctx) {
    const { transcript: t } = ctx;
    const grant = ctx.get('grant');
    const post = await ctx.get('post').run();
    ctx.put('postEnded', Date.now());
    showStepLog(t, post);
    if (post.exitCode !== 0) throw new Error(`the post step failed (exit ${post.exitCode})`);
    if (post.warnings.length > 0) throw new Error(`the post step warned: ${post.warnings.join('; ')}`);
    const left = managedObjects([grant.namespace]).filter((o) => o.includes(grant.grantId));
    if (left.length > 0) throw new Error(`grant objects still present: ${left.join(', ')}`);
    if (existsSync(grant.kubeconfigPath)) throw new Error(`${grant.kubeconfigPath} still exists`);
    t.result(
      MARKERS.revoked,
      `grant ${grant.grantId} is gone (no ServiceAccount, RoleBinding or Role left) and the kubeconfig was shredded`,
    );
  },
};
