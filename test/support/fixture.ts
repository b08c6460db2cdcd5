// The broker environment most suites start from, in one call: fresh job namespaces, the broker's
// RBAC from deploy/ for them, the local OIDC issuer, and the test policy for those namespaces;
// brokers (the built bundle, or in-process) are started from it and stopped by its cleanup.
//
// What lives in test/support/ and what in a suite's own support/ folder: README.md here.
import { freshNamespace } from './cluster.js';
import { managedObjects } from './managed-objects.js';
import { installBrokerRbac, type BrokerRbac, type BrokerRbacOptions } from './deploy-rbac.js';
import { startBroker, type RunningBroker, type StartBrokerOptions } from './broker.js';
import {
  startInProcessBroker,
  type InProcessBroker,
  type InProcessBrokerOptions,
} from './in-process-broker.js';
import { startOidcIssuer, type OidcIssuer } from './oidc-issuer.js';
import { createJob, type JobOptions, type RunnerJob } from './runner.js';
import { policyYaml, type PolicySpec } from './policy.js';
import { parsePolicy } from '../../src/broker/policy/index.js';

export interface BrokerEnvOptions {
  /** Name prefixes of the job namespaces: covered by the RBAC and the policy. Default ['test']. */
  namespaces?: string[];
  /** Name prefixes of namespaces the broker must not reach (no RBAC, no rule). */
  outsiders?: string[];
  /** The policy for the job namespaces; default: one rule granting `viewer` (policy.ts). */
  policy?: Omit<PolicySpec, 'namespaces'>;
  rbac?: BrokerRbacOptions;
}

export interface BrokerEnv {
  /** The first job namespace. */
  ns: string;
  namespaces: string[];
  outsiders: string[];
  rbac: BrokerRbac;
  issuer: OidcIssuer;
  /** The policy file's text. */
  policyYaml: string;
  /** The built bundle with this environment's policy, issuer and RBAC; HTTPS unless told otherwise. */
  startBroker(opts?: Partial<StartBrokerOptions>): Promise<RunningBroker>;
  /** The broker in this process with this environment's policy (parsed), issuer and RBAC; HTTPS. */
  startInProcessBroker(opts?: Partial<InProcessBrokerOptions>): Promise<InProcessBroker>;
  /** A runner job whose ID-token endpoint is this environment's issuer. */
  newJob(options?: JobOptions): RunnerJob;
  /** Runs `fn` with a new job (newJob), and removes the job's files afterwards whatever happens. */
  withJob<T>(fn: (job: RunnerJob) => Promise<T>, options?: JobOptions): Promise<T>;
  /** The action's inputs for a broker of this environment: its URL, its CA, the first namespace. */
  actionInputs(broker: RunningBroker, inputs: Record<string, string>): Record<string, string>;
  /** Stops every broker started here, then removes the issuer, the RBAC and the namespaces. */
  cleanup(): Promise<void>;
}

export async function startBrokerEnv(o: BrokerEnvOptions = {}): Promise<BrokerEnv> {
  const undo: (() => Promise<unknown> | void)[] = [];
  const cleanup = async () => {
    for (const step of undo.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  try {
    const created = await Promise.all(
      [...(o.namespaces ?? ['test']), ...(o.outsiders ?? [])].map((prefix) => freshNamespace(prefix)),
    );
    undo.push(() => Promise.all(created.map((n) => n.remove())));
    const names = created.map((n) => n.name);
    const namespaces = names.slice(0, o.namespaces?.length ?? 1);
    const rbac = await installBrokerRbac(namespaces, o.rbac);
    undo.push(() => rbac.cleanup());
    const issuer = await startOidcIssuer();
    undo.push(() => issuer.close());
    const yaml = policyYaml({ ...o.policy, namespaces });
    const newJob = (options: JobOptions = {}) =>
      createJob({
        idToken: { url: issuer.idTokenRequestUrl, token: issuer.idTokenRequestToken },
        ...options,
      });
    return {
      ns: namespaces[0]!,
      namespaces,
      outsiders: names.slice(namespaces.length),
      rbac,
      issuer,
      policyYaml: yaml,
      async startBroker(opts = {}) {
        const broker = await startBroker({
          policyYaml: yaml,
          issuer: issuer.issuer,
          namespaces,
          rbac,
          https: true,
          ...opts,
        });
        undo.push(() => broker.stop());
        return broker;
      },
      async startInProcessBroker(opts = {}) {
        const broker = await startInProcessBroker({
          issuer: issuer.issuer,
          policy: parsePolicy(yaml, 'policy.yaml'),
          rbac,
          https: true,
          ...opts,
        });
        undo.push(() => broker.stop());
        return broker;
      },
      newJob,
      async withJob(fn, options) {
        const job = newJob(options);
        try {
          return await fn(job);
        } finally {
          job.cleanup();
        }
      },
      actionInputs: (broker, inputs) => ({
        'broker-url': broker.url,
        'broker-ca': broker.ca?.toString('utf8') ?? '',
        namespace: namespaces[0]!,
        ...inputs,
      }),
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * A hardening suite's last word: lists the grant objects left in the job namespaces, prints the
 * suite's tally with their count, and cleans up whatever the listing did. Returns what was left.
 */
export async function cleanupCountingLeaks(
  env: BrokerEnv | undefined,
  report: (leaked: number) => string,
): Promise<string[]> {
  let left: string[] = ['(not counted)'];
  try {
    left = env ? managedObjects(env.namespaces) : [];
  } finally {
    console.log(report(left.length));
    await env?.cleanup();
  }
  return left;
}
