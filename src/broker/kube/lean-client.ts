// JSON calls to the API server over node:https with kept-alive connections: the transport of the
// exchange's and the revocation's Kubernetes calls (kube/hot-path-api.ts).
//
// client-node 2 sends every call through fetch over undici, its generated ObjectSerializer and a
// middleware chain: about 2.3 ms of the broker's CPU per GET against 1.0–1.2 ms for this
// (docs/benchmarks.md, findings 12 and 15). Authentication and TLS still come from client-node's
// KubeConfig, asked on every call as client-node itself does, so a rotated token file (re-read
// once a minute by its tokenFile authenticator, as for the in-cluster identity) and a rotated CA or
// client certificate file (read on every call) keep working.
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import { tlsIdentity } from './tls-identity.js';

export interface LeanClientLimits {
  /** The longest one call may take, connection included; then it fails (the caller answers 503). */
  callTimeoutMs: number;
  /** How long an idle connection is kept for the next call. */
  idleConnectionMs: number;
}

/** A call that did not answer within its deadline. */
export class KubeCallTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from the API server within ${ms} ms`);
    this.name = 'KubeCallTimeoutError';
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * Whether a call may be sent again when a kept-alive socket was closed under it before any answer:
 * a GET, or a DELETE pinned to one object by a uid precondition. A DELETE by name alone is not: if
 * the first one was carried out and another replica made an object of that name since (a JWT-use
 * record, a revoked grant's RoleBinding), the second would delete the newcomer.
 */
function resendable(method: string, body: unknown): boolean {
  if (method === 'GET') return true;
  const uid = (body as { preconditions?: { uid?: unknown } } | undefined)?.preconditions?.uid;
  return method === 'DELETE' && typeof uid === 'string' && uid !== '';
}

export class LeanKubeClient {
  private pooled: { key: string; agent: Agent } | undefined;
  private base: { server: string; url: URL } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly limits: LeanClientLimits,
  ) {}

  /**
   * Whether this client can reach the kubeconfig's cluster: HTTPS without a proxy. Anything else
   * (a proxy-url, plain HTTP) stays with client-node.
   */
  static supports(kc: KubeConfig): boolean {
    const cluster = kc.getCurrentCluster();
    return !!cluster?.server.startsWith('https:') && !cluster.proxyUrl;
  }

  /**
   * One call; resolves with the parsed JSON answer of a 2xx, rejects with client-node's own
   * ApiException (`code`, `body` as text) otherwise, so kube/errors.ts reads both clients' errors.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const server = this.kc.getCurrentCluster()?.server ?? '';
    const auth: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(auth);
    const url = this.urlOf(server);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: OutgoingHttpHeaders = {
      ...(auth.headers as OutgoingHttpHeaders | undefined),
      accept: 'application/json',
    };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const options: RequestOptions = {
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || 443,
      path: `${url.pathname.replace(/\/$/, '')}${path}`,
      method,
      headers,
      auth: auth.auth,
      agent: this.agentFor(server, auth),
    };
    const what = `${method} ${path}`;
    // One deadline for the call, a resend included.
    const end = Date.now() + this.limits.callTimeoutMs;
    let answer: Answer;
    try {
      answer = await this.send(what, options, payload, end);
    } catch (err) {
      if (!(err as { resendable?: boolean }).resendable || !resendable(method, body)) throw err;
      answer = await this.send(what, options, payload, end);
    }
    if (answer.status < 200 || answer.status > 299)
      throw new ApiException(answer.status, what, answer.text, answer.headers as Record<string, string>);
    if (!answer.text) return {} as T;
    try {
      return JSON.parse(answer.text) as T;
    } catch {
      // JSON.parse quotes the text around the fault, which may be part of a token.
      throw new Error(`${what}: the API server's answer is not JSON`);
    }
  }

  /** Closes every pooled connection (tests; a broker simply exits). */
  close(): void {
    this.pooled?.agent.destroy();
    this.pooled = undefined;
  }

  private urlOf(server: string): URL {
    if (this.base?.server !== server) this.base = { server, url: new URL(server) };
    return this.base.url;
  }

  /**
   * One keep-alive agent per TLS identity. When the identity changes, the old agent is dropped: its
   * calls in flight finish, and its sockets close once idle for idleConnectionMs.
   */
  private agentFor(server: string, o: RequestOptions): Agent {
    const key = tlsIdentity(server, o);
    if (this.pooled?.key !== key) {
      const agent = new Agent({
        keepAlive: true,
        // An idle kept-alive socket is closed after this long (the agent's socket timeout).
        timeout: this.limits.idleConnectionMs,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        pfx: o.pfx,
        passphrase: o.passphrase,
        servername: o.servername,
        ...(o.rejectUnauthorized !== undefined && { rejectUnauthorized: o.rejectUnauthorized }),
      });
      this.pooled = { key, agent };
    }
    return this.pooled.agent;
  }

  private send(
    what: string,
    options: RequestOptions,
    payload: string | undefined,
    end: number,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      let answered = false;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        // A kept-alive socket the server closed just as it was reused, before any answer: the
        // request was never read, so an idempotent call may be sent again on a new socket.
        const code = (err as NodeJS.ErrnoException).code;
        const resendable = req.reusedSocket && !answered && (code === 'ECONNRESET' || code === 'EPIPE');
        reject(Object.assign(new Error(`${what}: ${err.message}`, { cause: err }), { resendable }));
      };
      const req = request(options, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(deadline);
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
        });
      });
      // No deadline of its own in node:https: a hung API server would hold the call forever.
      const deadline = setTimeout(
        () => {
          if (settled) return;
          const err = new KubeCallTimeoutError(what, this.limits.callTimeoutMs);
          settled = true;
          reject(err);
          req.destroy(err);
        },
        Math.max(0, end - Date.now()),
      );
      req.on('error', fail);
      req.end(payload);
    });
  }
}
