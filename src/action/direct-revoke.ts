// Fallback revocation straight at the API server, used by post only when the broker cannot be
// reached. It authenticates as the grant itself: the broker gives every grant a self-revoke Role
// allowing exactly these two deletes. Loaded with a dynamic import and bundled as its own file
// (dist/post/direct-revoke.js), so the Kubernetes client costs nothing on the normal path.
import { ApiException, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';

export interface DirectRevokeInput {
  server: string;
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

async function deleteIdempotently(
  what: string,
  timeoutMs: number,
  del: () => Promise<unknown>,
): Promise<DeleteOutcome> {
  try {
    await withTimeout(what, timeoutMs, del());
    return 'deleted';
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return 'already-gone';
    // Only the status goes into the message: an ApiException's text can carry the whole response.
    if (err instanceof ApiException)
      throw new DirectRevokeError(`${what}: the API server answered HTTP ${err.code}`, { cause: err });
    if (err instanceof DirectRevokeError) throw err;
    const code =
      (err as NodeJS.ErrnoException).code ?? (err as { cause?: NodeJS.ErrnoException }).cause?.code;
    throw new DirectRevokeError(`${what}: ${code ?? 'request failed'}`, { cause: err });
  }
}

export async function revokeDirect(input: DirectRevokeInput): Promise<DirectRevokeResult> {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'grant', server: input.server, caData: input.certificateAuthorityData, skipTLSVerify: false },
    ],
    users: [{ name: 'grant', token: input.token }],
    contexts: [{ name: 'grant', cluster: 'grant', user: 'grant', namespace: input.namespace }],
    currentContext: 'grant',
  });
  const timeoutMs = input.timeoutMs ?? 15_000;
  const name = input.grantId;
  const namespace = input.namespace;

  // RoleBinding first: authorization is gone the moment it is deleted, whereas a deleted
  // ServiceAccount's token may still authenticate for the apiserver's token cache lifetime.
  // The ServiceAccount is still attempted if that fails: deleting the root of the grant
  // invalidates the token and garbage-collects the owned RoleBinding too.
  const failures: string[] = [];
  const attempt = (what: string, del: () => Promise<unknown>) =>
    deleteIdempotently(what, timeoutMs, del).catch((err: unknown) => {
      failures.push(err instanceof Error ? err.message : String(err));
      return undefined;
    });
  const roleBinding = await attempt(`delete RoleBinding ${namespace}/${name}`, () =>
    kc.makeApiClient(RbacAuthorizationV1Api).deleteNamespacedRoleBinding({ name, namespace }),
  );
  const serviceAccount = await attempt(`delete ServiceAccount ${namespace}/${name}`, () =>
    kc.makeApiClient(CoreV1Api).deleteNamespacedServiceAccount({ name, namespace }),
  );
  if (roleBinding === undefined || serviceAccount === undefined)
    throw new DirectRevokeError(failures.join('; '));
  return { roleBinding, serviceAccount };
}
