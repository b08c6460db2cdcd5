// Fallback revocation straight at the API server, used by post only when the broker cannot be
// reached. It authenticates as the grant itself: the broker gives every grant a self-revoke Role
// allowing exactly these two deletes. Two plain DELETEs on the action's own transport, trusting the
// kubeconfig's cluster CA alone (as kubectl does), so post needs no Kubernetes client.
import { createNodeTransport, NetworkError, type HttpTransport } from './http-transport.js';

export interface DirectRevokeInput {
  server: string;
  /** Base64 PEM, as in the kubeconfig's certificate-authority-data. */
  certificateAuthorityData: string;
  token: string;
  namespace: string;
  /** The grant's RoleBinding and ServiceAccount are both named after it. */
  grantId: string;
  timeoutMs?: number;
}

export type DeleteOutcome = 'deleted' | 'already-gone';

export interface DirectRevokeResult {
  roleBinding: DeleteOutcome;
  serviceAccount: DeleteOutcome;
}

export class DirectRevokeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirectRevokeError';
  }
}

function withTimeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DirectRevokeError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The server URL may carry a path (a proxy in front of the API server); resource paths go below it. */
function resourceUrl(server: string, path: string): URL {
  const url = new URL(server);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  return url;
}

async function deleteIdempotently(
  transport: HttpTransport,
  what: string,
  url: URL,
  token: string,
  timeoutMs: number,
): Promise<DeleteOutcome> {
  let status: number;
  try {
    const res = await withTimeout(
      what,
      timeoutMs,
      transport({
        method: 'DELETE',
        url,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        timeoutMs,
      }),
    );
    status = res.status;
  } catch (err) {
    if (err instanceof DirectRevokeError) throw err;
    const code = (err as { cause?: NodeJS.ErrnoException }).cause?.code;
    const detail = code ?? (err instanceof NetworkError ? err.message : 'request failed');
    throw new DirectRevokeError(`${what}: ${detail}`, { cause: err });
  }
  if (status === 404) return 'already-gone';
  // Only the status goes into the message: the body can echo the request.
  if (status < 200 || status > 299)
    throw new DirectRevokeError(`${what}: the API server answered HTTP ${status}`);
  return 'deleted';
}

export async function revokeDirect(input: DirectRevokeInput): Promise<DirectRevokeResult> {
  const ca = Buffer.from(input.certificateAuthorityData, 'base64').toString('utf8');
  // Through the runner's proxy like every other call, as kubectl would reach the API server.
  const transport = createNodeTransport({ ca: ca || undefined, publicRoots: [], proxyEnv: process.env });
  const timeoutMs = input.timeoutMs ?? 15_000;
  const ns = encodeURIComponent(input.namespace);
  const name = encodeURIComponent(input.grantId);
  const where = `${input.namespace}/${input.grantId}`;

  // RoleBinding first: authorization is gone the moment it is deleted, whereas a deleted
  // ServiceAccount's token may still authenticate for the apiserver's token cache lifetime.
  // The ServiceAccount is still attempted if that fails: deleting the root of the grant
  // invalidates the token and garbage-collects the owned RoleBinding too.
  const failures: string[] = [];
  const attempt = (what: string, path: string) =>
    deleteIdempotently(transport, what, resourceUrl(input.server, path), input.token, timeoutMs).catch(
      (err: unknown) => {
        failures.push(err instanceof Error ? err.message : String(err));
        return undefined;
      },
    );
  const roleBinding = await attempt(
    `delete RoleBinding ${where}`,
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/${name}`,
  );
  const serviceAccount = await attempt(
    `delete ServiceAccount ${where}`,
    `/api/v1/namespaces/${ns}/serviceaccounts/${name}`,
  );
  if (roleBinding === undefined || serviceAccount === undefined)
    throw new DirectRevokeError(failures.join('; '));
  return { roleBinding, serviceAccount };
}
