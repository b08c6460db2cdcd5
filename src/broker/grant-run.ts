// The GitHub run a grant was issued to, as its ServiceAccount records it (labels and annotations
// the exchange wrote): for the audit lines of what is done with the grant after its exchange
// (gateway calls, refusals, revocations by the grant's own token), which carry no GitHub token.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { VerifiedClaims } from './types.js';
import {
  ACTOR_ANNOTATION,
  JOB_WORKFLOW_REF_ANNOTATION,
  REF_ANNOTATION,
  REPOSITORY_ANNOTATION,
  REPOSITORY_ID_LABEL,
  RUN_ATTEMPT_LABEL,
  RUN_ID_LABEL,
  SHA_ANNOTATION,
  WORKFLOW_ANNOTATION,
} from './naming.js';

export type RunAttribution = Partial<
  Pick<
    VerifiedClaims,
    | 'repository'
    | 'repository_id'
    | 'run_id'
    | 'run_attempt'
    | 'workflow'
    | 'job_workflow_ref'
    | 'actor'
    | 'ref'
    | 'sha'
  >
>;

export function runOfGrant(meta: V1ObjectMeta | undefined): RunAttribution {
  const a = meta?.annotations ?? {};
  const l = meta?.labels ?? {};
  const run: RunAttribution = {
    repository: a[REPOSITORY_ANNOTATION],
    repository_id: l[REPOSITORY_ID_LABEL],
    run_id: l[RUN_ID_LABEL],
    run_attempt: l[RUN_ATTEMPT_LABEL],
    workflow: a[WORKFLOW_ANNOTATION],
    job_workflow_ref: a[JOB_WORKFLOW_REF_ANNOTATION],
    actor: a[ACTOR_ANNOTATION],
    ref: a[REF_ANNOTATION],
    sha: a[SHA_ANNOTATION],
  };
  for (const key of Object.keys(run) as (keyof RunAttribution)[]) if (run[key] === undefined) delete run[key];
  return run;
}
