// One line of the API server's audit log (an audit.k8s.io Event, as JSON) read as the call a user
// made: who (username and uid), when it completed, and the RBAC-relevant attributes and status.
// Only the fields named here are read: never a request or response object, never a header.
// `policy advise` (advise/audit-input.ts) and the direct-mode job summary (audit-log-usage.ts)
// both read the log through it.
import type { ApiCall } from './api-call.js';

type Json = Record<string, unknown>;

export interface KubeAuditCall {
  auditId?: string;
  username?: string;
  /** For a ServiceAccount's token: the ServiceAccount's uid. */
  uid?: string;
  /** When the call completed (RFC 3339, the API server's clock). */
  stageTimestamp?: string;
  call: ApiCall;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const obj = (v: unknown): Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};

/**
 * The call an Event records, for an Event at stage ResponseComplete with a verb and a status; any
 * other line (another stage, another kind, not an object) is undefined.
 */
export function kubeAuditCall(line: unknown): KubeAuditCall | undefined {
  const l = obj(line);
  if (l.kind !== 'Event' || l.stage !== 'ResponseComplete') return undefined;
  const verb = str(l.verb);
  const status = obj(l.responseStatus).code;
  if (!verb || typeof status !== 'number') return undefined;
  const ref = obj(l.objectRef);
  const user = obj(l.user);
  return {
    auditId: str(l.auditID),
    username: str(user.username),
    uid: str(user.uid),
    stageTimestamp: str(l.stageTimestamp),
    call: {
      verb,
      apiGroup: str(ref.apiGroup) ?? '',
      resource: str(ref.resource),
      subresource: str(ref.subresource),
      namespace: str(ref.namespace),
      name: str(ref.name),
      status,
    },
  };
}
