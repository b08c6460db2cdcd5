// 3a. Revocation speed as a job sees it: the action's real main step (dist/main, as the runner runs
// it) gets a grant; a call the grant allows (list configmaps) succeeds; then the real post step
// starts and the same call is repeated with the job's token until the API server answers 403
// (RoleBinding gone: authorization revoked) and then 401 (ServiceAccount gone: the token itself is
// rejected once the API server's token cache lets go of it). The 401 is confirmed with kubectl.
import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { kubectlStatus, tokenKubeconfig } from '../../test/support/cluster.js';
import type { Scenario } from '../lib/context.js';
import { credentialsFromKubeconfig, MinimalKubeClient } from '../lib/kube-client.js';
import { median, nowMs } from '../lib/stats.js';

export interface RevocationSample {
  /** Post step start → first 403 on the previously allowed call. */
  to403Ms: number | null;
  /** Post step start → first 401. */
  to401Ms: number;
  /** Post step start → post process exit. */
  postWallMs: number;
  kubectlSaw401: boolean;
}

export interface RevocationResults {
  samples: RevocationSample[];
  revoke403Ms: number;
  revoke401Ms: number;
  postWallMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const runRevocationBench: Scenario<RevocationResults> = async (ctx, settings, log) => {
  const ns = ctx.namespaces.exchange;
  const bb = await ctx.startBroker([ns]);
  const samples: RevocationSample[] = [];
  try {
    await ctx.forEachJob(0, settings.revokeReps, async (job, i) => {
      const main = await job.main(ctx.actionInputs(bb, ns));
      if (main.exitCode !== 0) throw new Error(`main step failed: ${main.errors.join('; ')}`);
      const kubeconfig = main.outputs.kubeconfig!;
      const token = (load(readFileSync(kubeconfig, 'utf8')) as { users: { user: { token: string } }[] })
        .users[0]!.user.token;
      const jobKube = new MinimalKubeClient({ ...credentialsFromKubeconfig(kubeconfig), token });
      const call = () => jobKube.raw('GET', `/api/v1/namespaces/${ns}/configmaps?limit=1`);
      const before = await call();
      if (before.status !== 200)
        throw new Error(`the granted call answered ${before.status} before revocation`);

      const t0 = nowMs();
      let postWallMs = NaN;
      const post = job.post().then((r) => {
        postWallMs = nowMs() - t0;
        if (r.exitCode !== 0) throw new Error(`post step exited ${r.exitCode}`);
        return r;
      });
      let to403Ms: number | null = null;
      let to401Ms: number;
      const deadline = t0 + 60_000;
      for (;;) {
        const { status } = await call();
        const at = nowMs() - t0;
        if (status === 403 && to403Ms === null) to403Ms = at;
        if (status === 401) {
          to401Ms = at;
          break;
        }
        if (status !== 200 && status !== 403) throw new Error(`unexpected status ${status} while revoking`);
        if (nowMs() > deadline)
          throw new Error('the token was still accepted 60 s after the post step started');
        // Fine-grained until authorization is gone, then coarser while the token cache expires.
        await sleep(to403Ms === null ? 5 : 50);
      }
      await post;
      jobKube.close();
      const kc = tokenKubeconfig(token, ns);
      const kubectlSaw401 = kubectlStatus(kc.path, ['get', 'configmaps']).status === 401;
      kc.cleanup();
      samples.push({ to403Ms, to401Ms, postWallMs, kubectlSaw401 });
      log(
        `  revocation ${i + 1}/${settings.revokeReps}: 403 after ${to403Ms?.toFixed(0) ?? 'never'} ms, 401 after ${to401Ms.toFixed(0)} ms (post exited after ${postWallMs.toFixed(0)} ms; kubectl 401: ${kubectlSaw401})`,
      );
    });
  } finally {
    await bb.stop();
    await ctx.clearGrants(ns);
  }
  return {
    samples,
    revoke403Ms: median(samples.flatMap((s) => (s.to403Ms === null ? [] : [s.to403Ms]))),
    revoke401Ms: median(samples.map((s) => s.to401Ms)),
    postWallMs: median(samples.map((s) => s.postWallMs)),
  };
};
