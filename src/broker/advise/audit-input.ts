// Reads the audit lines `policy advise` learns from: the broker's own JSON lines (its exchange
// lines say which role, rule and run a grant is; its gateway lines are the calls) and the API
// server's audit log (Event objects, one per line: the calls a grant made straight to the API
// server, joined to its run by the grant's ServiceAccount). A call both logs saw (a gateway call)
// is counted once: the gateway line names the API server's audit id.
import { parseServiceAccountUser } from '../../shared/contract.js';
import { apiGroupOfPath, type ApiCall } from '../usage/api-call.js';
import { kubeAuditCall } from '../usage/kube-audit-event.js';

/** What the proposals are grouped by. */
export interface GroupKey {
  policyRule: string;
  repositoryId: string;
  /** job_workflow_ref. */
  workflow: string;
  role: string;
}

export interface ObservedCall extends ApiCall {
  key: GroupKey;
  /** The run: repository id, run id and attempt (or the grant, when the run is not known). */
  run: string;
  branch?: string;
  /** The namespace the grant was made in. */
  grantNamespace?: string;
}

export interface AuditInput {
  calls: ObservedCall[];
  /** Lines that were neither: not JSON, other actions, other users, other stages. */
  ignored: number;
}

type Json = Record<string, unknown>;

interface GrantInfo {
  role?: string;
  policyRule?: string;
  namespace?: string;
  github: Json;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const obj = (v: unknown): Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};

function parseLines(text: string): { lines: Json[]; bad: number } {
  const lines: Json[] = [];
  let bad = 0;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    try {
      const v: unknown = JSON.parse(raw);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) lines.push(v as Json);
      else bad += 1;
    } catch {
      bad += 1;
    }
  }
  return { lines, bad };
}

const isBroker = (l: Json, action: string) => l.type === 'audit' && l.action === action;

function observed(call: ApiCall, grant: GrantInfo, fallbackRun: string, line: Json): ObservedCall {
  const github = { ...grant.github, ...obj(line.github) };
  const runId = str(github.run_id);
  return {
    ...call,
    key: {
      policyRule: str(line.policyRule) ?? grant.policyRule ?? '(unknown rule)',
      repositoryId: str(github.repository_id) ?? '(unknown repository)',
      workflow: str(github.job_workflow_ref) ?? '(unknown workflow)',
      role: grant.role ?? '(unknown role)',
    },
    run: runId
      ? `${str(github.repository_id) ?? '?'}/${runId}/${str(github.run_attempt) ?? '1'}`
      : fallbackRun,
    branch: str(github.ref),
    grantNamespace: grant.namespace ?? str(line.grantNamespace),
  };
}

function gatewayCall(l: Json): ApiCall | undefined {
  if (l.notSent !== undefined || typeof l.status !== 'number') return undefined;
  const apiGroup = apiGroupOfPath(str(l.path) ?? '');
  const verb = str(l.verb);
  if (!verb) return undefined;
  return {
    verb,
    apiGroup: apiGroup ?? '',
    resource: apiGroup === undefined ? undefined : str(l.resource),
    subresource: str(l.subresource),
    namespace: str(l.namespace),
    name: str(l.name),
    status: l.status,
  };
}

export function readAuditInput(text: string): AuditInput {
  const { lines, bad } = parseLines(text);
  const grants = new Map<string, GrantInfo>();
  const viaGateway = new Set<string>();
  for (const l of lines) {
    const grantId = str(l.grantId);
    if (isBroker(l, 'exchange') && grantId)
      grants.set(grantId, {
        role: str(l.role),
        policyRule: str(l.policyRule),
        namespace: str(l.namespace),
        github: obj(l.github),
      });
    if (isBroker(l, 'gateway') && str(l.apiAuditId)) viaGateway.add(str(l.apiAuditId)!);
  }
  const calls: ObservedCall[] = [];
  for (const l of lines) {
    if (isBroker(l, 'gateway') && str(l.grantId)) {
      const call = gatewayCall(l);
      const grantId = str(l.grantId)!;
      if (call) calls.push(observed(call, grants.get(grantId) ?? { github: {} }, grantId, l));
      continue;
    }
    const event = kubeAuditCall(l);
    if (!event || viaGateway.has(event.auditId ?? '')) continue;
    const who = event.username === undefined ? undefined : parseServiceAccountUser(event.username);
    const grant = who && grants.get(who.name);
    if (who && grant) calls.push(observed(event.call, { ...grant, namespace: who.namespace }, who.name, {}));
  }
  return { calls, ignored: bad + lines.length - calls.length - grants.size };
}
