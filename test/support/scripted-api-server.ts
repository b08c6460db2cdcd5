// A scripted Kubernetes API server for unit tests: a local HTTPS server that answers each namespaced
// call by the client-node method a test scripted for it (`createNamespacedRole`, `deleteNamespacedLease`,
// ...), as the real API server would: the result as JSON, a thrown `{ code }` as that status with a
// Status body. The broker's production hot path (kube/connection.ts, kube/hot-path-api.ts) talks to
// it over TLS, so unit tests cover the HTTP stack the broker runs, not a stand-in for it.
// One server per test process; each script gets a path prefix of its own on it.
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { CONNECTION_LIMITS, KubeConnection } from '../../src/broker/kube/connection.js';
import { jsonHotPath, type HotPathApi } from '../../src/broker/kube/hot-path-api.js';
import { selfSignedCert } from './tls.js';

/** `{ core, rbac, coordination }` with the client-node methods a test scripts. */
export type ScriptedApis = Record<string, Record<string, unknown> | undefined>;

const GROUPS: Record<string, string> = {
  '': 'core',
  'rbac.authorization.k8s.io': 'rbac',
  'coordination.k8s.io': 'coordination',
};
const KINDS: Record<string, string> = {
  serviceaccounts: 'ServiceAccount',
  roles: 'Role',
  rolebindings: 'RoleBinding',
  leases: 'Lease',
};
const VERBS: Record<string, string> = { POST: 'create', PUT: 'replace', PATCH: 'patch', DELETE: 'delete' };
const capitalized = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The client-node method a namespaced call maps to, with its parameters; undefined if none. */
export function scriptedCallOf(
  method: string,
  url: string,
): { api: string; name: string; params: { namespace: string; name?: string } & ListParams } | undefined {
  const [path = '', query = ''] = url.split('?');
  const m =
    /^\/(?:api\/v1|apis\/([^/]+)\/v1)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  const api = GROUPS[m?.[1] ?? ''];
  const kind = KINDS[m?.[3] ?? ''];
  if (!m || !api || !kind) return undefined;
  const [, , namespace, , name, sub] = m;
  const verb = method === 'GET' ? (name ? 'read' : 'list') : VERBS[method];
  if (!verb) return undefined;
  return {
    api,
    name: `${verb}Namespaced${kind}${sub ? capitalized(sub) : ''}`,
    params: {
      namespace: decodeURIComponent(namespace ?? ''),
      ...(name && { name: decodeURIComponent(name) }),
      ...listParams(new URLSearchParams(query)),
    },
  };
}

/** A list's query, named as client-node's list methods name their parameters. */
interface ListParams {
  limit?: number;
  _continue?: string;
  labelSelector?: string;
}
function listParams(q: URLSearchParams): ListParams {
  const limit = q.get('limit');
  const next = q.get('continue');
  const labelSelector = q.get('labelSelector');
  return {
    ...(limit !== null && { limit: Number(limit) }),
    ...(next !== null && { _continue: next }),
    ...(labelSelector !== null && { labelSelector }),
  };
}

const status = (code: number, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });

async function answer(apis: ScriptedApis, req: IncomingMessage, text: string, res: ServerResponse) {
  const send = (code: number, body: string) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(body);
  };
  const call = scriptedCallOf(req.method ?? '', req.url ?? '');
  const fn = call && apis[call.api]?.[call.name];
  if (!call || typeof fn !== 'function') {
    send(501, status(501, `the test scripted no ${call?.name ?? `${req.method} ${req.url}`}`));
    return;
  }
  try {
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    const result: unknown = await fn({ ...call.params, ...(body !== undefined && { body }) });
    send(req.method === 'POST' ? 201 : 200, JSON.stringify(result ?? {}));
  } catch (err) {
    const code = Number((err as { code?: unknown }).code);
    send(code >= 400 && code <= 599 ? code : 500, status(code || 500, (err as Error).message));
  }
}

interface Running {
  url: string;
  ca: Buffer;
}
let running: Promise<Running> | undefined;
const scripts = new Map<string, ScriptedApis>();

/** The process's scripted server, started on first use; it holds nothing open (unref'd). */
function scriptedServer(): Promise<Running> {
  running ??= new Promise((resolve) => {
    const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'k8s-ea-scripted-')));
    const server: Server = createServer(
      { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
      (req, res) => {
        const [, id, ...rest] = (req.url ?? '').split('/');
        req.url = `/${rest.join('/')}`;
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on(
          'end',
          () => void answer(scripts.get(id ?? '') ?? {}, req, Buffer.concat(chunks).toString(), res),
        );
      },
    );
    server.on('connection', (socket: Socket) => socket.unref());
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      resolve({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: tls.ca });
    });
  });
  return running;
}

/**
 * The production limits but the call deadline: the scripted server runs in the test's own process,
 * so on a loaded machine (a full run on 2 cores) a starved event loop can hold an answer past the
 * broker's 5 s, and the timed-out call's retry would read as a second call the code never meant.
 * The deadline itself is tested with its own limits (__tests__/broker/kube/connection.test.ts).
 */
const UNIT_TEST_LIMITS = { ...CONNECTION_LIMITS, callTimeoutMs: 120_000 };

/** A kubeconfig for the HTTPS server at `url` (trusted by `ca`), as the broker with a bearer token. */
export function scriptedKubeConfig(url: string, ca: Buffer): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'scripted', server: url, caData: ca.toString('base64') }],
    users: [{ name: 'broker', token: 'scripted-broker-token' }],
    contexts: [{ name: 'scripted', cluster: 'scripted', user: 'broker' }],
    currentContext: 'scripted',
  });
  return kc;
}

/** The broker's production hot path (its connection and JSON calls) to the API server at `url`. */
export function hotPathOver(url: string, ca: Buffer): { hotPath: HotPathApi; connection: KubeConnection } {
  const connection = new KubeConnection(scriptedKubeConfig(url, ca), UNIT_TEST_LIMITS);
  return { hotPath: jsonHotPath(connection), connection };
}

let nextId = 0;

/**
 * The production hot path to the scripted server, answering by `apis`. Usable at once: the server
 * starts with the first call.
 */
export function scriptedHotPath(apis: ScriptedApis): HotPathApi {
  const id = `s${(nextId += 1)}`;
  scripts.set(id, apis);
  const ready = scriptedServer().then(({ url, ca }) => hotPathOver(`${url}/${id}`, ca).connection);
  return jsonHotPath({
    request: async <T>(method: string, path: string, body?: unknown) =>
      (await ready).request<T>(method, path, body),
  });
}
