// Steps 10 to 12: after the job: the revoked token is rejected, and the broker's audit lines are
// joined to the API server's audit log by the token's credential id.
import { existsSync } from 'node:fs';
import { tokenKubeconfig, waitFor } from '../../../test/support/cluster.js';
import { type DemoContext, MARKERS } from '../context.js';
import { apiAuditEventsFor, CREDENTIAL_ID_KEY, kubectlHttpStatus } from '../kube.js';
import { runChild } from '../../../test/support/runner.js';
import type { DemoStep } from '../run-steps.js';
import { seconds } from '../transcript.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// The API server stops accepting the token once its authentication cache drops the deleted SA.
export const rejectRevokedToken: DemoStep<DemoContext> = {
  title: 'Use the revoked token again until the API server rejects it',
  async run(ctx) {
    const { transcript: t, cleanup } = ctx;
    const grant = ctx.get('grant');
    const postEnded = ctx.get('postEnded');
    t.line('(the API server caches token authentications for ~10 s: 403 until then, 401 after)');
    // A private 0700 directory with a 0600 file for kubectl, removed right after; the token is dead.
    const kc = tokenKubeconfig(grant.token, grant.namespace);
    cleanup.push('removed the temporary kubeconfig of the revoked token', () => {
      if (!existsSync(kc.path)) return 'nothing-to-do';
      kc.cleanup();
    });
    try {
      const seen: string[] = [];
      for (;;) {
        const r = await runChild('kubectl', [
          '--kubeconfig',
          kc.path,
          '--request-timeout=10s',
          'get',
          'configmaps',
        ]);
        const status = kubectlHttpStatus(r);
        const at = seconds(Date.now() - postEnded);
        if (status === 401) {
          t.line(`${seen.length} request(s) answered 403 Forbidden (authorization already gone)`);
          t.result(MARKERS.rejected, `401 Unauthorized ${at} after the post step ended`);
          return;
        }
        if (status !== 403) throw new Error(`unexpected answer to the revoked token: ${r.stderr.trim()}`);
        seen.push(at);
        if (Date.now() - postEnded > 60_000) throw new Error('the token was still accepted after 60 s');
        await sleep(500);
      }
    } finally {
      kc.cleanup();
    }
  },
};

export const brokerAuditLines: DemoStep<DemoContext> = {
  title: "The broker's audit lines for this grant",
  async run(ctx) {
    const { grantId } = ctx.get('grant');
    for (const a of ctx
      .get('broker')
      .audit()
      .filter((l) => l.grantId === grantId)) {
      const gh = (a.github ?? {}) as Record<string, unknown>;
      ctx.transcript.line(
        `${String(a.time)} ${String(a.action)}${a.by ? ` by ${String(a.by)}` : ''}: grant ${String(a.grantId)}` +
          (a.credentialId ? `, ${String(a.credentialId)}` : '') +
          (gh.run_id ? `, run ${String(gh.repository)}#${String(gh.run_id)}/${String(gh.run_attempt)}` : ''),
      );
    }
  },
};

export const joinAuditLogs: DemoStep<DemoContext> = {
  title: "Join the GitHub run to the API server's audit log by credential id",
  async run(ctx) {
    const t = ctx.transcript;
    const grant = ctx.get('grant');
    const exchange = ctx
      .get('broker')
      .audit()
      .find((l) => l.action === 'exchange' && l.grantId === grant.grantId);
    if (!exchange) throw new Error('the broker wrote no exchange audit line for this grant');
    if (exchange.credentialId !== grant.credentialId)
      throw new Error(
        `the broker recorded ${String(exchange.credentialId)}, the token says ${grant.credentialId}`,
      );
    const gh = exchange.github as Record<string, string>;
    const run = `${gh.repository} run ${gh.run_id} attempt ${gh.run_attempt} (workflow "${gh.workflow}", sha ${gh.sha?.slice(0, 7)}, actor ${gh.actor}, jti ${gh.jti})`;
    t.line(`broker:     ${run}`);
    t.line(`            -> grant ${grant.grantId}, credential ${grant.credentialId}`);
    const jq = `jq -c 'select(.user.extra["${CREDENTIAL_ID_KEY}"]? == ["${grant.credentialId}"])'`;
    const auditLog = ctx.get('cluster').auditLog;
    if (!auditLog) {
      t.line(`API server: find this token's requests in your cluster's audit log with`);
      t.line(`            ${jq} <audit log>`);
      t.result(
        MARKERS.audit,
        `broker line for ${run} carries ${grant.credentialId}; look that id up in the cluster's audit log`,
      );
      return;
    }
    // The audit backend is blocking: the events are written before kubectl got its answers.
    const events = await waitFor(
      'the allowed and the denied kubectl call in the audit log',
      () => {
        const found = apiAuditEventsFor(auditLog, grant.credentialId);
        const create = found.some((e) => e.verb === 'create' && e.responseStatus?.code === 201);
        const denied = found.some((e) => e.requestURI.includes('/secrets') && e.responseStatus?.code === 403);
        return create && denied ? found : undefined;
      },
      10_000,
      250,
    );
    const postEnded = ctx.get('postEnded');
    const jobCalls = events.filter((e) => Date.parse(e.stageTimestamp ?? '') < postEnded);
    const checkCalls = events.length - jobCalls.length;
    t.line(`API server: ${events.length} requests made with ${grant.credentialId}; the job's own:`);
    for (const e of jobCalls)
      t.line(
        `            ${e.stageTimestamp ?? ''} ${e.verb.padEnd(6)} ${String(e.responseStatus?.code ?? '?')} ` +
          `${(e.annotations?.['authorization.k8s.io/decision'] ?? '').padEnd(6)} ${e.requestURI.split('?')[0]}`,
      );
    if (checkCalls > 0) t.line(`            (+ ${checkCalls} from the revoked-token check)`);
    t.line(`            all of them: ${jq} ${auditLog}`);
    const username = events[0]?.user?.username ?? '';
    t.result(
      MARKERS.audit,
      `${gh.repository} run ${gh.run_id} -> ${grant.credentialId} -> ${events.length} API server requests as ${username} ` +
        '(create configmaps 201, list secrets 403, ...)',
    );
  },
};
