// The broker's one connection to the API server: the only place that decides how a call travels.
// It owns, for every caller alike, the pooling (one undici dispatcher per TLS identity), the idle
// timeout, the deadline of a call, the rules for sending a call again, and the rotation of the CA,
// client certificate and token files. Four callers share it:
// - the hot path's JSON calls (request(), hot-path-api.ts): the grant's objects, its token, the
//   deletes of a revocation, a rollback or the reaper;
// - the watches (stream(), pooled-watch.ts) of the gateway's grant table and of role vetting;
// - client-node's API clients (clientNodeAuth), for lists, TokenReview, the leader lease:
//   client-node 2 builds a new undici Agent for every call (a TLS handshake each), so each call is
//   handed the pooled dispatcher instead, with a deadline client-node does not set;
// - the gateway's upstream lanes (serverTls(), gateway/upstream.ts), which forward with the grant's
//   token and must never carry the broker's credentials: they pool per server CA alone.
//
// The hot path's calls skip client-node's fetch, generated serializer and middleware: about 2.3 ms of
// broker CPU per GET against 1.0–1.2 ms (docs/benchmarks.md, findings 12 and 15); they run over the
// same undici stack as the rest.
import { readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import {
  ApiException,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';
import { PerIdentity, tlsIdentity } from './tls-identity.js';

/** The longest one Kubernetes API call may take; a request makes a few, within limits.requestTimeoutMs. */
export const K8S_CALL_TIMEOUT_MS = 5_000;

/**
 * How long an idle connection to the API server is kept, by every caller. undici's default, 4 s, is
 * shorter than the usual gap between a CI broker's exchanges, so nearly every exchange opened new
 * TLS connections on its answer's path (docs/benchmarks.md, "Where the broker's CPU goes"). Below
 * the idle timeouts of common load balancers (60 s and more) and client-go's (90 s).
 */
export const K8S_IDLE_CONNECTION_MS = 30_000;

/**
 * How often the hot path, the watches and the gateway's lanes ask the kubeconfig again for the
 * broker's credentials (its token, its client certificate) and the API server's CA: files a pod's
 * kubelet rotates. Asked on every call, they cost a hash of the CA and key material and, in a pod, a
 * read of the CA file per call (docs/benchmarks.md, finding 25); a rotation is seen within this.
 * client-node's API objects still authenticate each call themselves; only the dispatcher they are
 * handed is this connection's.
 */
export const CREDENTIALS_RECHECK_MS = 1_000;

export interface ConnectionLimits {
  /** The longest one call may take, connection and a resend included; then it fails (a 503). */
  callTimeoutMs: number;
  /** How long an idle connection is kept for the next call. */
  idleConnectionMs: number;
  /** How often the broker's credentials and the server's CA are read again (CREDENTIALS_RECHECK_MS). */
  credentialsRecheckMs: number;
}

export const CONNECTION_LIMITS: ConnectionLimits = {
  callTimeoutMs: K8S_CALL_TIMEOUT_MS,
  idleConnectionMs: K8S_IDLE_CONNECTION_MS,
  credentialsRecheckMs: CREDENTIALS_RECHECK_MS,
};

/** A call that did not answer within its deadline. */
export class KubeCallTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from the API server within ${ms} ms`);
    this.name = 'KubeCallTimeoutError';
  }
}

/** The TLS side of a connection, as tls.connect takes it. */
export type TlsOptions = Pick<
  RequestOptions,
  'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'servername' | 'rejectUnauthorized'
>;

/** Where the API server is and how to trust it, without the broker's credentials (the gateway's). */
export interface ServerTls {
  /** The server URL's origin. */
  origin: string;
  /** The server URL's path without trailing slashes, prefixed to every request path. */
  basePath: string;
  /** Undefined for plain HTTP. */
  tls: TlsOptions | undefined;
  /** tlsIdentity() of the above: a new value means new connections. */
  key: string;
}

type Interceptor = Dispatcher.DispatcherComposeInterceptor;

/**
 * undici closes the connection after any request whose method carries no payload by definition
 * but was sent with a body, as a DELETE with its DeleteOptions (preconditions, propagationPolicy):
 * each revocation and reaper deletion paid a new TLS handshake, a new SecureContext on both ends.
 * The API server reads a DELETE's body by its Content-Length, so the connection stays in step and
 * can be kept (docs/benchmarks.md, the reaper at scale).
 */
export const keepAliveAfterDeleteBody: Interceptor = (dispatch) => (opts, handler) =>
  dispatch(opts.method === 'DELETE' && opts.body != null ? { ...opts, reset: false } : opts, handler);

const tlsOf = (o: RequestOptions): TlsOptions => ({
  ca: o.ca,
  cert: o.cert,
  key: o.key,
  pfx: o.pfx,
  passphrase: o.passphrase,
  servername: o.servername,
  ...(o.rejectUnauthorized !== undefined && { rejectUnauthorized: o.rejectUnauthorized }),
});

/**
 * Whether a call may be sent again when its connection failed before any answer: a GET, or a DELETE
 * pinned to one object by a uid precondition. A DELETE by name alone is not: if the first one was
 * carried out and another replica made an object of that name since (a JWT-use record, a revoked
 * grant's RoleBinding), the second would delete the newcomer.
 */
function resendable(method: string, body: unknown): boolean {
  if (method === 'GET') return true;
  const uid = (body as { preconditions?: { uid?: unknown } } | undefined)?.preconditions?.uid;
  return method === 'DELETE' && typeof uid === 'string' && uid !== '';
}

/** A connection closed under the call before any answer (a kept-alive socket the server closed). */
const CLOSED_UNDER_CALL = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/** The broker's credentials as headers (a call without a body, one with JSON) and its dispatcher. */
interface BrokerCredentials {
  headers: { read: Readonly<Record<string, string>>; write: Readonly<Record<string, string>> };
  dispatcher: Dispatcher;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export class KubeConnection {
  private readonly broker = new PerIdentity<Dispatcher>();
  private server: { checkedAt: number; value: ServerTls } | undefined;
  private credentials: { checkedAt: number; value: BrokerCredentials } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    readonly limits: ConnectionLimits = CONNECTION_LIMITS,
    /** Wrap the broker's pooled dispatcher (a test passes none, as the control). */
    private readonly interceptors: readonly Interceptor[] = [keepAliveAfterDeleteBody],
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether the hot path's JSON calls can reach the kubeconfig's cluster: HTTPS without a proxy.
   * Anything else (a proxy-url, plain HTTP) stays with client-node.
   */
  static supports(kc: KubeConfig): boolean {
    const cluster = kc.getCurrentCluster();
    return !!cluster?.server.startsWith('https:') && !cluster.proxyUrl;
  }

  /**
   * One JSON call with the broker's credentials; resolves with the parsed answer of a 2xx, rejects
   * with client-node's own ApiException (`code`, `body` as text) otherwise, so kube/errors.ts reads
   * every caller's errors alike.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const what = `${method} ${path}`;
    const { headers, dispatcher } = await this.brokerCredentials();
    const { origin, basePath } = this.serverTls();
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options: Dispatcher.DispatchOptions = {
      origin,
      path: `${basePath}${path}`,
      method: method as Dispatcher.HttpMethod,
      headers: payload === undefined ? headers.read : headers.write,
      body: payload,
    };
    // One deadline for the call, a resend included.
    const deadline = new CallDeadline(this.limits.callTimeoutMs);
    let answer: Answer;
    try {
      answer = await this.send(what, dispatcher, options, deadline).catch((err: unknown) => {
        if (!(err as { resendable?: boolean }).resendable || !resendable(method, body)) throw err;
        return this.send(what, dispatcher, options, deadline);
      });
    } finally {
      deadline.clear();
    }
    // undici hands a finished connection back one event-loop turn after the answer (to see a
    // close the server sends despite keep-alive); a caller's next call made sooner would open a
    // second connection. Answering after that turn keeps sequential calls on one connection.
    await new Promise((resolve) => setImmediate(resolve));
    this.noteStatus(answer.status);
    if (answer.status < 200 || answer.status > 299)
      throw new ApiException(answer.status, what, answer.text, answer.headers);
    if (!answer.text) return {} as T;
    try {
      return JSON.parse(answer.text) as T;
    } catch {
      // JSON.parse quotes the text around the fault, which may be part of a token.
      throw new Error(`${what}: the API server's answer is not JSON`);
    }
  }

  /**
   * A GET whose answer is read as it comes (a watch, kube/pooled-watch.ts), with the broker's
   * credentials over the same pooled connections: its headers within the call deadline, then no
   * deadline, only `inactivityMs` between two chunks of the answer. Never sent again: a watch that
   * fails is opened afresh by its loop, from the last version it saw.
   */
  async stream(path: string, signal: AbortSignal, inactivityMs: number): Promise<Dispatcher.ResponseData> {
    const { headers, dispatcher } = await this.brokerCredentials();
    const { origin, basePath } = this.serverTls();
    const res = await dispatcher.request({
      origin,
      path: `${basePath}${path}`,
      method: 'GET',
      headers: headers.read,
      signal,
      headersTimeout: this.limits.callTimeoutMs,
      bodyTimeout: inactivityMs,
    });
    this.noteStatus(res.statusCode);
    return res;
  }

  /**
   * client-node's authentication hook, for its API clients (clients.ts): its own authentication,
   * then the deadline and the pooled dispatcher. A proxy's dispatcher is kept as client-node made it.
   */
  readonly clientNodeAuth: SecurityAuthentication = {
    getName: () => 'kubeconfig authentication, pooled',
    applySecurityAuthentication: async (context: RequestContext) => {
      await this.kc.applySecurityAuthentication(context);
      // client-node sets no deadline: a hung API server (accepting connections, never answering)
      // would hold a renewal, a policy check or the reaper's pass forever. Bounded, it is a 503.
      if (!context.getSignal()) context.setSignal(AbortSignal.timeout(this.limits.callTimeoutMs));
      const fresh = context.getDispatcher();
      // No TLS options: fetch's global pool already keeps connections alive.
      if (!fresh || this.kc.getCurrentCluster()?.proxyUrl) return;
      void fresh.close().catch(() => undefined);
      context.setDispatcher((await this.brokerCredentials()).dispatcher);
    },
  };

  /**
   * The API server's address and CA, without the broker's credentials: what the gateway forwards
   * over. Read again at most every credentialsRecheckMs, so a rotated CA file reaches the gateway too;
   * a CA file that cannot be read keeps the last one read.
   */
  serverTls(): ServerTls {
    const at = this.now();
    if (this.server && this.isFresh(this.server.checkedAt, at)) return this.server.value;
    let value: ServerTls;
    try {
      value = this.readServerTls();
    } catch (err) {
      if (!this.server) throw err;
      value = this.server.value;
    }
    this.server = { checkedAt: at, value };
    return value;
  }

  /** Closes every pooled connection of the broker's credentials (tests; a broker simply exits). */
  close(): void {
    this.broker.destroy();
    this.credentials = undefined;
  }

  /**
   * A 401 to a call or a watch: a token that expired since it was read (an exec plugin's, which
   * client-node hands out to the last millisecond of its life) is asked for afresh by the next call,
   * not only after the interval.
   */
  private noteStatus(status: number): void {
    if (status === 401) this.credentials = undefined;
  }

  /** Read less than credentialsRecheckMs ago; a clock stepped back reads as stale, not as fresh. */
  private isFresh(checkedAt: number, at: number): boolean {
    const age = at - checkedAt;
    return age >= 0 && age < this.limits.credentialsRecheckMs;
  }

  private readServerTls(): ServerTls {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster?.server) throw new Error('no cluster server in the broker kubeconfig');
    const url = new URL(cluster.server);
    const ca = cluster.caData
      ? Buffer.from(cluster.caData, 'base64')
      : cluster.caFile
        ? readFileSync(cluster.caFile)
        : undefined;
    const tls: TlsOptions | undefined =
      url.protocol === 'https:'
        ? {
            ca,
            rejectUnauthorized: !cluster.skipTLSVerify,
            ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
          }
        : undefined;
    return {
      origin: url.origin,
      basePath: url.pathname.replace(/\/+$/, ''),
      tls,
      key: tlsIdentity(cluster.server, tls ?? {}),
    };
  }

  /**
   * The broker's credentials, asked of the KubeConfig as client-node itself does, at most every
   * credentialsRecheckMs: a rotated token file (re-read once a minute by its tokenFile authenticator,
   * as for the in-cluster identity) and a rotated CA or client certificate file keep working. A
   * failure to read them is not kept: the next call asks again.
   */
  private async brokerCredentials(): Promise<BrokerCredentials> {
    const at = this.now();
    if (this.credentials && this.isFresh(this.credentials.checkedAt, at)) return this.credentials.value;
    const o: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(o);
    const auth = { ...(o.headers as Record<string, string> | undefined) };
    if (o.auth) auth.authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`;
    const key = tlsIdentity(this.kc.getCurrentCluster()?.server ?? '', o);
    const dispatcher = this.broker.get(key, () =>
      new Agent({
        connect: tlsOf(o),
        keepAliveTimeout: this.limits.idleConnectionMs,
        // A server's own Keep-Alive hint may lengthen it no further.
        keepAliveMaxTimeout: this.limits.idleConnectionMs,
      }).compose([...this.interceptors]),
    );
    // Frozen: every call of the next credentialsRecheckMs sends these very objects.
    const read = Object.freeze({ ...auth, accept: 'application/json' });
    const write = Object.freeze({ ...read, 'content-type': 'application/json' });
    const value: BrokerCredentials = { headers: { read, write }, dispatcher };
    this.credentials = { checkedAt: at, value };
    return value;
  }

  /**
   * One attempt, through undici's dispatch interface with the answer collected as it comes: its
   * request() would wrap every answer in a Readable stream and the deadline in an abort listener,
   * about a quarter of the client's CPU per call (docs/benchmarks.md, finding 27).
   */
  private send(
    what: string,
    dispatcher: Dispatcher,
    options: Dispatcher.DispatchOptions,
    deadline: CallDeadline,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let answered: Omit<Answer, 'text'> | undefined;
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        deadline.onExpiry = undefined;
        reject(this.failure(what, err, deadline.expired, answered === undefined));
      };
      if (deadline.expired) return fail(new Error('the deadline passed before the call was sent'));
      // Until undici starts writing it, a call still waits for a connection (a slow handshake): it
      // fails at its deadline all the same, and onRequestStart then keeps it from being sent.
      deadline.onExpiry = () => fail(new Error('no connection to the API server before the deadline'));
      try {
        dispatcher.dispatch(options, {
          onRequestStart: (controller) => {
            if (deadline.expired) return controller.abort(new Error('deadline'));
            deadline.onExpiry = () => controller.abort(new Error('deadline'));
          },
          onResponseStart: (_controller, status, headers) => {
            answered = { status, headers: headers as Record<string, string> };
          },
          onResponseData: (_controller, chunk) => {
            chunks.push(chunk);
          },
          onResponseEnd: () => {
            if (settled) return;
            settled = true;
            deadline.onExpiry = undefined;
            resolve({ ...answered!, text: Buffer.concat(chunks).toString('utf8') });
          },
          onResponseError: (_controller, err) => fail(err),
        });
      } catch (err) {
        fail(err);
      }
    });
  }

  private failure(what: string, err: unknown, timedOut: boolean, beforeAnswer: boolean): Error {
    if (timedOut) return new KubeCallTimeoutError(what, this.limits.callTimeoutMs);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    return Object.assign(new Error(`${what}: ${(err as Error).message}`, { cause: err }), {
      resendable: beforeAnswer && CLOSED_UNDER_CALL.has(code),
    });
  }
}

/**
 * A call's deadline: a timer cleared when the call ends (an AbortSignal.timeout's timer would outlive
 * it), which aborts the attempt in flight, if any, when it fires.
 */
class CallDeadline {
  expired = false;
  /** Set while an attempt is in flight: aborts it. */
  onExpiry: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.onExpiry?.();
    }, ms);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
