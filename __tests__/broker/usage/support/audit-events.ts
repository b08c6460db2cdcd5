// Lines of an API server audit log, as the API server writes them (audit.k8s.io/v1 Events at
// Metadata level, timestamps with microseconds), for the unit tests of the direct-mode summary.
import { randomUUID } from 'node:crypto';

export interface EventSpec {
  user: string;
  uid?: string;
  /** Epoch ms the call completed. */
  at: number;
  verb?: string;
  apiGroup?: string;
  resource?: string;
  namespace?: string;
  name?: string;
  status?: number;
  stage?: string;
  /** Request-level events carry the body: the readers must never copy it. */
  requestObject?: unknown;
}

const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '123Z');

export function auditEvent(e: EventSpec): string {
  return JSON.stringify({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: e.requestObject === undefined ? 'Metadata' : 'Request',
    auditID: randomUUID(),
    stage: e.stage ?? 'ResponseComplete',
    requestURI: `/api/v1/namespaces/${e.namespace ?? 'ci'}/${e.resource ?? 'configmaps'}`,
    verb: e.verb ?? 'get',
    user: {
      username: e.user,
      ...(e.uid ? { uid: e.uid } : {}),
      groups: ['system:serviceaccounts', 'system:authenticated'],
    },
    sourceIPs: ['10.0.0.1'],
    userAgent: 'kubectl/v1.33.0',
    objectRef: {
      resource: e.resource ?? 'configmaps',
      namespace: e.namespace ?? 'ci',
      ...(e.name ? { name: e.name } : {}),
      ...(e.apiGroup ? { apiGroup: e.apiGroup } : {}),
      apiVersion: 'v1',
    },
    responseStatus: { metadata: {}, code: e.status ?? 200 },
    ...(e.requestObject === undefined ? {} : { requestObject: e.requestObject }),
    requestReceivedTimestamp: micro(e.at - 3),
    stageTimestamp: micro(e.at),
  });
}
