// The bench's client for the broker's HTTPS API: one keep-alive agent trusting the broker's test CA,
// so per-exchange figures measure the broker's work rather than a TLS handshake per request.
import { Agent } from 'node:https';
import { EXCHANGE_PATH, type ExchangeRequest, type ExchangeResponse } from '../../src/shared/api.js';
import { sendRequest } from './https-request.js';

/** Below the broker server's keepAliveTimeout (src/broker/net/server.ts). */
const BROKER_IDLE_MS = 4_000;

export class BenchBrokerClient {
  private readonly agent: Agent;
  private readonly base: URL;

  /**
   * keepAlive false: a new TLS connection per request, as the action's main step makes. `servername`:
   * the TLS server name to send and verify, when `url` is an address (a relay's).
   */
  constructor(url: string, ca: Buffer | string, options: { keepAlive?: boolean; servername?: string } = {}) {
    this.base = new URL(url);
    // An idle connection is dropped after BROKER_IDLE_MS, before the broker's server closes it
    // (keepAliveTimeout, 5 s): otherwise an exchange after a pause between batches can go out on a
    // connection the server is closing at that moment, and fail with "socket hang up".
    this.agent = new Agent({
      keepAlive: options.keepAlive ?? true,
      maxSockets: Infinity,
      ca,
      timeout: BROKER_IDLE_MS,
      ...(options.servername && { servername: options.servername }),
    });
  }

  post(path: string, jwt: string, body: unknown): Promise<{ status: number; text: string }> {
    const payload = JSON.stringify(body);
    return sendRequest(
      {
        hostname: this.base.hostname,
        port: this.base.port,
        path,
        method: 'POST',
        agent: this.agent,
        headers: {
          authorization: `Bearer ${jwt}`,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
        },
      },
      payload,
    );
  }

  /**
   * Opens `count` kept-alive connections, so that a batch of `count` concurrent exchanges starts on
   * them: `count` health checks at once, each on its own connection (the agent has no free socket).
   */
  async openConnections(count: number): Promise<void> {
    const checks = Array.from({ length: count }, () =>
      sendRequest({
        hostname: this.base.hostname,
        port: this.base.port,
        path: '/healthz',
        agent: this.agent,
      }),
    );
    for (const res of await Promise.all(checks))
      if (res.status !== 200) throw new Error(`the broker's /healthz answered ${res.status}`);
  }

  /** One exchange that must succeed; the error names the broker's error code, never the token. */
  async exchange(jwt: string, body: ExchangeRequest): Promise<ExchangeResponse> {
    const res = await this.post(EXCHANGE_PATH, jwt, body);
    if (res.status !== 200) throw new Error(`exchange answered ${res.status}: ${res.text.slice(0, 300)}`);
    return JSON.parse(res.text) as ExchangeResponse;
  }

  close(): void {
    this.agent.destroy();
  }
}
