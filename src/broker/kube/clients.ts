// The Kubernetes API clients the broker uses, from a kubeconfig file or the pod's in-cluster identity.
import { readFileSync } from 'node:fs';
import type { AgentOptions, RequestOptions } from 'node:https';
import {
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type RequestContext,
} from '@kubernetes/client-node';
import { tlsIdentity } from './tls-identity.js';
import { LeanKubeClient } from './lean-client.js';
import { clientNodeHotPath, leanHotPath, type HotPathApi } from './hot-path-api.js';

export interface K8sClients {
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  authn: AuthenticationV1Api;
  coordination: CoordinationV1Api;
  /** The exchange's and the revocation's calls, over a lean node:https client where it can reach the cluster. */
  hotPath: HotPathApi;
}

/** The longest one Kubernetes API call may take; a request makes a few, within limits.requestTimeoutMs. */
export const K8S_CALL_TIMEOUT_MS = 5_000;

/**
 * How long an idle connection to the API server is kept. undici's default, 4 s, is shorter than
 * the usual gap between a CI broker's exchanges, so nearly every exchange opened two new TLS
 * connections on its answer's path (docs/benchmarks.md, "Where the broker's CPU goes"). Below the
 * idle timeouts of common load balancers (60 s and more) and client-go's (90 s).
 */
export const K8S_IDLE_CONNECTION_MS = 30_000;

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;
type AgentClass = new (options: { connect: unknown; keepAliveTimeout: number }) => Dispatcher;
type Interceptor = Extract<Parameters<Dispatcher['compose']>[0], (...args: never[]) => unknown>;

/**
 * undici closes the connection after any request whose method carries no payload by definition
 * but was sent with a body, as client-node sends every DELETE (its DeleteOptions: preconditions,
 * propagationPolicy): each revocation and reaper deletion paid a new TLS handshake, a new
 * SecureContext on both ends. The API server reads a DELETE's body by its Content-Length, so the
 * connection stays in step and can be kept (docs/benchmarks.md, the reaper at scale).
 */
const keepAliveAfterDeleteBody: Interceptor = (dispatch) => (opts, handler) =>
  dispatch(opts.method === 'DELETE' && opts.body != null ? { ...opts, reset: false } : opts, handler);

/**
 * A KubeConfig whose API clients reuse their connections. client-node 2.0 builds a new undici
 * Agent for every request (KubeConfig.applySecurityAuthentication), so every API call paid a TLS
 * handshake and a new SecureContext on both ends: under load the broker spent most of its CPU
 * there and reached a quarter of the throughput of a keep-alive client (bench/, docs/benchmarks.md).
 * Here one dispatcher per TLS identity (server, CA, client certificate), built like client-node's
 * but keeping idle connections K8S_IDLE_CONNECTION_MS, is handed to every request; if that
 * identity changes (a rotated CA or certificate file), the next request gets a new dispatcher and
 * the old one is closed once idle.
 */
export class ConnectionReusingKubeConfig extends KubeConfig {
  private pooled: { key: string; dispatcher: Dispatcher } | undefined;

  /** `interceptors` wrap the pooled dispatcher (the tests pass none, as the control). */
  constructor(private readonly interceptors: readonly Interceptor[] = [keepAliveAfterDeleteBody]) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    // client-node sets no deadline: a hung API server (accepting connections, never answering)
    // would hold an exchange, a revocation or the reaper's pass forever. Bounded, it is a 503.
    if (!context.getSignal()) context.setSignal(AbortSignal.timeout(K8S_CALL_TIMEOUT_MS));
    const fresh = context.getDispatcher();
    if (!fresh) return; // no TLS options: fetch's global pool already keeps connections alive
    const o: RequestOptions & AgentOptions = {};
    await this.applyToHTTPSOptions(o);
    const key = tlsIdentity(this.getCurrentCluster()?.server ?? '', o);
    if (this.pooled?.key !== key) {
      const previous = this.pooled?.dispatcher;
      this.pooled = { key, dispatcher: this.keptAlive(fresh, o).compose([...this.interceptors]) };
      void previous?.close().catch(() => undefined);
    }
    context.setDispatcher(this.pooled.dispatcher);
  }

  /**
   * client-node's dispatcher with a longer idle timeout. Built with the class of the one it just
   * made (its own undici, whose fetch the generated clients call) from its own connect options;
   * a proxy or SOCKS dispatcher is kept as client-node made it.
   */
  private keptAlive(fresh: Dispatcher, o: AgentOptions): Dispatcher {
    const options = this.createDispatcherOptions(this.getCurrentCluster(), o);
    if (options.type !== 'agent') return fresh;
    void fresh.close().catch(() => undefined);
    const Agent = fresh.constructor as AgentClass;
    return new Agent({ connect: options.connect, keepAliveTimeout: K8S_IDLE_CONNECTION_MS });
  }
}

/** A kubeconfig from `path`, or the in-cluster service account when no path is given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new ConnectionReusingKubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

export function createK8sClients(kc: KubeConfig): K8sClients {
  const apis = {
    core: kc.makeApiClient(CoreV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    authn: kc.makeApiClient(AuthenticationV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
  };
  const hotPath = LeanKubeClient.supports(kc)
    ? leanHotPath(
        new LeanKubeClient(kc, {
          callTimeoutMs: K8S_CALL_TIMEOUT_MS,
          idleConnectionMs: K8S_IDLE_CONNECTION_MS,
        }),
      )
    : clientNodeHotPath(apis);
  return { ...apis, hotPath };
}

/** What a job's kubeconfig needs to reach the API server: its URL and CA (base64 PEM). */
export interface ClusterEndpoint {
  server: string;
  certificateAuthorityData: string;
}

/** The endpoint handed to jobs; the config may override both (the broker may reach the API another way). */
export function clusterEndpointOf(
  kc: KubeConfig,
  overrides: { clusterServer?: string; clusterCaFile?: string } = {},
): ClusterEndpoint {
  const cluster = kc.getCurrentCluster();
  const server = overrides.clusterServer ?? cluster?.server;
  if (!server) throw new Error('no cluster server: set clusterServer in the broker config');
  let ca = '';
  if (overrides.clusterCaFile) ca = readFileSync(overrides.clusterCaFile).toString('base64');
  else if (cluster?.caData) ca = cluster.caData;
  else if (cluster?.caFile) ca = readFileSync(cluster.caFile).toString('base64');
  return { server, certificateAuthorityData: ca };
}
