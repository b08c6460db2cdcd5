// What the demo's steps share: the options, the transcript, the clean-up stack, the names this run
// uses, and what each step made for the later ones.
import { randomBytes } from 'node:crypto';
import type { RunningBroker } from '../../test/support/broker.js';
import type { BrokerRbac } from '../../test/support/deploy-rbac.js';
import type { OidcIssuer } from '../../test/support/oidc-issuer.js';
import type { RunnerJob } from '../../test/support/runner.js';
import type { CleanupStack } from './cleanup-stack.js';
import type { DemoOptions } from './options.js';
import type { PostStep } from './post-step.js';
import type { Transcript } from './transcript.js';

// The six results a reader (and __tests__/docs/demo.cluster.test.ts) looks for in the transcript.
export const MARKERS = {
  granted: 'grant issued',
  allowed: 'kubectl allowed',
  denied: 'kubectl denied',
  revoked: 'revoked',
  rejected: 'token rejected',
  audit: 'audit correlation',
} as const;

/** The grant the action's main step obtained. The token stays in memory and is never printed. */
export interface Grant {
  kubeconfigPath: string;
  token: string;
  credentialId: string;
  grantId: string;
  namespace: string;
}

/** Each made by one step and read by later ones. */
export interface Made {
  cluster: {
    adminKubeconfig: string;
    /** Only when the demo can read it (the local control plane). */ auditLog?: string;
  };
  rbac: BrokerRbac;
  issuer: OidcIssuer;
  broker: RunningBroker;
  brokerCa: string;
  job: RunnerJob;
  post: PostStep;
  grant: Grant;
  /** When the post step ended (ms since the epoch): the rejection check counts from it. */
  postEnded: number;
}

export class DemoContext {
  readonly jobNamespace: string;
  readonly brokerNamespace: string;
  private readonly made: Partial<Made> = {};

  constructor(
    readonly options: DemoOptions,
    readonly transcript: Transcript,
    readonly cleanup: CleanupStack,
  ) {
    const suffix = randomBytes(3).toString('hex');
    this.jobNamespace = `demo-staging-${suffix}`;
    this.brokerNamespace = `demo-k8s-ea-${suffix}`;
  }

  put<K extends keyof Made>(key: K, value: Made[K]): Made[K] {
    this.made[key] = value;
    return value;
  }

  get<K extends keyof Made>(key: K): Made[K] {
    const value = this.made[key];
    if (value === undefined) throw new Error(`no ${key} yet: the step that makes it has not run`);
    return value;
  }
}
