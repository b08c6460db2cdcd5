// The attack corpus's gateway routes (issue 24): hostile calls through a gateway-mode broker of its
// own, each refused with its status and reason, never forwarded, and its denial line naming the
// grant and run of the live token that made it. Then the fairness route (one grant's watches over
// its cap, counted as the API server counts watches) and the look-alike ServiceAccount that once
// evicted a live grant from every replica.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { request as httpsRequest } from 'node:https';
import type { ExchangeResponse } from '../../../src/shared/api.js';
import { kubectlAdmin, waitFor } from '../../../test/support/cluster.js';
import { startBrokerEnv, type BrokerEnv } from '../../../test/support/fixture.js';
import type { InProcessBroker } from '../../../test/support/in-process-broker.js';
import {
  gatewayRequest,
  rawGatewayRequest,
  type GatewayAnswer,
} from '../../gateway/support/gateway-client.js';
import { deployerGrant } from '../../gateway/support/gateway-grant.js';
import { forwardedCalls, untilGatewayAccepts } from '../../gateway/support/gateway-counts.js';

const WATCH_CAP = 2;

export function gatewayAttackCorpus(): void {
  describe('gateway attack corpus: refused, never forwarded, the denial names the grant', () => {
    let env: BrokerEnv;
    let broker: InProcessBroker;
    let live: ExchangeResponse;

    beforeAll(async () => {
      env = await startBrokerEnv({
        namespaces: ['attack-gw', 'attack-gw-b'],
        policy: { rules: [{ roles: ['deployer'] }] },
      });
      broker = await env.startInProcessBroker({
        gateway: true,
        gatewayLimits: { longRunningPerGrant: WATCH_CAP },
      });
      live = await exchange();
      await untilGatewayAccepts(broker, () => ask('GET', configmaps()));
    }, 120_000);

    afterAll(() => env?.cleanup());

    const exchange = () => deployerGrant(env, broker);
    const configmaps = () => `/api/v1/namespaces/${env.ns}/configmaps`;
    const pod = () => `/api/v1/namespaces/${env.ns}/pods/p`;
    const ask = (method: string, path: string, token = live.token) =>
      gatewayRequest(broker.gateway!.url, broker.ca!, method, path, { token });
    const forwarded = () => forwardedCalls(broker);

    const rows: [string, () => Promise<GatewayAnswer>, number, string][] = [
      ['exec with a trailing slash', () => ask('POST', `${pod()}/exec/?command=sh`), 403, 'upgrade_refused'],
      ['attach with a trailing slash', () => ask('POST', `${pod()}/attach/`), 403, 'upgrade_refused'],
      ['portforward with more segments', () => ask('POST', `${pod()}/portforward/x`), 403, 'upgrade_refused'],
      ['the pods proxy', () => ask('GET', `${pod()}/proxy/`), 403, 'proxy_refused'],
      [
        'the services proxy',
        () => ask('GET', `/api/v1/namespaces/${env.ns}/services/web:80/proxy/x`),
        403,
        'proxy_refused',
      ],
      ['the nodes proxy', () => ask('GET', '/api/v1/nodes/n1/proxy/configz'), 403, 'proxy_refused'],
      [
        'the /proxy/ verb',
        () => ask('GET', `/api/v1/proxy/namespaces/${env.ns}/pods/p`),
        403,
        'proxy_refused',
      ],
      [
        'CONNECT',
        () =>
          rawGatewayRequest(
            broker.gateway!.url,
            broker.ca!,
            `CONNECT kubernetes.default.svc:443 HTTP/1.1\r\nHost: kubernetes.default.svc:443\r\nAuthorization: Bearer ${live.token}\r\n\r\n`,
          ),
        400,
        'path_refused',
      ],
    ];

    test.each(rows)('%s', async (_name, send, status, reason) => {
      const before = await forwarded();
      const lines = broker.auditLines.length;
      const answer = await send();
      expect(answer.status).toBe(status);
      const denial = await waitFor('its denial line', () =>
        broker.auditLines.slice(lines).find((l) => l.action === 'denial' && l.reason === reason),
      );
      // The live token that made it is named: grant and run, so a refused exec is traced to its job.
      expect(denial).toMatchObject({
        request: 'gateway',
        grantId: live.grantId,
        github: expect.objectContaining({ repository: 'octo-org/octo-repo', run_attempt: '1' }),
      });
      expect(await forwarded()).toBe(before);
    });

    test('watches spelt ?watch=yes and ?watch=True count against the cap (and are audited as watches)', async () => {
      const g = await exchange();
      await untilGatewayAccepts(broker, () => ask('GET', configmaps(), g.token));
      const held = ['yes', 'True'].map((v) => openWatch(`${configmaps()}?watch=${v}`, g.token));
      expect(await Promise.all(held.map((w) => w.status))).toEqual([200, 200]);
      const over = openWatch(`${configmaps()}?watch=1`, g.token);
      expect(await over.status).toBe(429);
      over.stop();
      for (const w of held) w.stop();
      const lines = await waitFor('their lines', () => {
        const found = broker.auditLines.filter((l) => l.action === 'gateway' && l.grantId === g.grantId);
        return found.length === 3 ? found : undefined;
      });
      expect(lines.map((l) => l.verb)).toEqual(['list', 'watch', 'watch']);
    });

    test('a look-alike ServiceAccount of the same grant id in another job namespace does not evict the grant', async () => {
      const other = env.namespaces[1]!;
      kubectlAdmin(['create', 'serviceaccount', live.grantId, '-n', other]);
      kubectlAdmin([
        'label',
        'serviceaccount',
        live.grantId,
        '-n',
        other,
        'app.kubernetes.io/managed-by=k8s-ephemeral-access',
        `k8s-ephemeral-access.io/grant=${live.grantId}`,
      ]);
      const lookalikeToken = kubectlAdmin(['create', 'token', live.grantId, '-n', other]).trim();
      // Give every replica's watch time to see it, then the live grant must still work.
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await ask('GET', configmaps())).status).toBe(200);
      expect((await ask('GET', `/api/v1/namespaces/${other}/configmaps`, lookalikeToken)).status).toBe(401);
      kubectlAdmin(['delete', 'serviceaccount', live.grantId, '-n', other, '--wait=true']);
      await new Promise((r) => setTimeout(r, 1_000));
      // Its deletion leaves no tombstone that keeps the real grant out, even after a change of it.
      expect((await ask('GET', configmaps())).status).toBe(200);
      kubectlAdmin(['annotate', 'serviceaccount', live.grantId, '-n', env.ns, 'test/touched=1']);
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await ask('GET', configmaps())).status).toBe(200);
    });

    /** A watch held open: its status when headers come, and a way to end it. */
    function openWatch(path: string, token: string) {
      const url = new URL(broker.gateway!.url);
      const req = httpsRequest({
        hostname: url.hostname,
        port: url.port,
        path,
        ca: broker.ca,
        agent: false,
        headers: { authorization: `Bearer ${token}` },
      });
      const status = new Promise<number>((resolve) => {
        req.on('response', (res) => {
          res.resume();
          res.on('error', () => undefined);
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
      });
      req.end();
      return { status, stop: () => req.destroy() };
    }
  });
}
