// A deliberately minimal Kubernetes REST client for the benchmark floor: node:https with a
// keep-alive agent, JSON in and out, nothing else (no retries, no schema objects, no fetch layer).
// It measures what the API server itself costs, so the broker's client-node overhead shows up as
// the difference. Authenticates with a bearer token or a client certificate from a kubeconfig.
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { sendRequest } from './https-request.js';

export interface KubeCredentials {
  server: string;
  ca: Buffer;
  token?: string;
  cert?: Buffer;
  key?: Buffer;
}

export class KubeStatusError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: string,
  ) {
    super(`${method} ${path} -> ${status}: ${body.slice(0, 300)}`);
  }
}

interface KubeconfigDoc {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: {
    user: { token?: string; 'client-certificate-data'?: string; 'client-key-data'?: string };
  }[];
}

/** The first cluster and user of a kubeconfig file (the files the bench writes have one of each). */
export function credentialsFromKubeconfig(path: string): KubeCredentials {
  const doc = load(readFileSync(path, 'utf8')) as KubeconfigDoc;
  const cluster = doc.clusters[0]!.cluster;
  const user = doc.users[0]!.user;
  const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64') : undefined);
  return {
    server: cluster.server,
    ca: Buffer.from(cluster['certificate-authority-data'], 'base64'),
    token: user.token,
    cert: b64(user['client-certificate-data']),
    key: b64(user['client-key-data']),
  };
}

export interface KubeResponse {
  status: number;
  text: string;
}

export class MinimalKubeClient {
  private readonly agent: Agent;
  private readonly base: URL;
  private readonly headers: Record<string, string>;

  /** `servername`: the TLS server name to send and verify, when `server` is an address (a relay's). */
  constructor(creds: KubeCredentials, options: { keepAlive?: boolean; servername?: string } = {}) {
    this.base = new URL(creds.server);
    this.agent = new Agent({
      keepAlive: options.keepAlive ?? true,
      ...(options.servername && { servername: options.servername }),
      maxSockets: Infinity,
      // Idle connections dropped well before the API server's own idle timeout (90 s), so a call
      // after a pause between scenarios never goes out on a connection the server is closing.
      timeout: 30_000,
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
    });
    this.headers = { accept: 'application/json' };
    if (creds.token) this.headers.authorization = `Bearer ${creds.token}`;
  }

  /**
   * One request; resolves with any status (callers decide what counts as success). The body goes as
   * JSON, under `contentType` (e.g. a server-side apply's `application/apply-patch+yaml`: JSON is YAML).
   */
  raw(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { ...this.headers };
    if (payload !== undefined) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return sendRequest(
      {
        protocol: this.base.protocol,
        hostname: this.base.hostname,
        port: this.base.port,
        path,
        method,
        headers,
        agent: this.agent,
      },
      payload,
    );
  }

  /** A request that must answer 2xx; returns the parsed JSON body. */
  async json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body);
    if (res.status < 200 || res.status >= 300) throw new KubeStatusError(res.status, method, path, res.text);
    return (res.text ? JSON.parse(res.text) : {}) as T;
  }

  /**
   * Streams a watch; calls onEvent for each event as it arrives. Returns a stop function.
   * Used to time deletions to the millisecond instead of polling.
   */
  watch(path: string, onEvent: (type: string, object: Record<string, unknown>) => void): () => void {
    const req = request(
      {
        protocol: this.base.protocol,
        hostname: this.base.hostname,
        port: this.base.port,
        path,
        method: 'GET',
        headers: this.headers,
        agent: new Agent({
          ca: this.agent.options.ca,
          cert: this.agent.options.cert,
          key: this.agent.options.key,
        }),
      },
      (res) => {
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (!line) continue;
            const ev = JSON.parse(line) as { type: string; object: Record<string, unknown> };
            onEvent(ev.type, ev.object);
          }
        });
        res.on('error', () => undefined);
      },
    );
    req.on('error', () => undefined);
    req.end();
    return () => req.destroy();
  }

  close(): void {
    this.agent.destroy();
  }
}
