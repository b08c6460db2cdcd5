// `npm run demo`: the whole flow on this machine, nothing faked, as a readable transcript.
//
//   local control plane (or an existing cluster) -> broker under deploy/'s RBAC with the example
//   policy -> the action's main step run as the runner runs it -> kubectl allowed and denied ->
//   post step -> grant gone, token rejected -> broker audit lines joined to the API server's audit
//   log by the token's credential id.
//
// It reuses the test harness (test/support/) so the demo and the tests exercise the same pieces.
// Every resource it creates is registered on a clean-up stack the moment it exists, so a failure
// or Ctrl-C (SIGINT/SIGTERM) unwinds exactly what was made: post (revoke + shred) if main ran,
// broker, issuer, namespaces and, if this run started it, the control plane.
// Secrets are never printed: no GitHub JWT, no Kubernetes token, no kubeconfig contents; the
// token is kept in memory for the rejection check and shown only as its credential id.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { dump, load } from 'js-yaml';
// The test harness: it reads the cluster's coordinates from the environment only when called.
import * as cluster from '../test/support/cluster.js';
import * as brokerSupport from '../test/support/broker.js';
import { startOidcIssuer } from '../test/support/oidc-issuer.js';
import { createJob } from '../test/support/runner.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What the demo uses of scripts/cluster.mjs (plain JavaScript, so its shape is declared here). */
interface ClusterScript {
  up(o?: { quiet?: boolean }): Promise<ClusterInfo>;
  down(o?: { quiet?: boolean }): Promise<void>;
  clusterInfo(): ClusterInfo;
}
interface ClusterInfo {
  kubeconfig: string;
  auditLog: string;
  server?: string;
}

/** Loaded on use: importing this module (e.g. from a test) must not need the cluster script. */
async function loadClusterScript(): Promise<ClusterScript> {
  const specifier = './cluster.mjs'; // a variable: keeps tsc from looking for its types
  return (await import(specifier)) as ClusterScript;
}

// The six results a reader (and __tests__/docs/demo.test.ts) looks for in the transcript.
export const MARKERS = {
  granted: 'grant issued',
  allowed: 'kubectl allowed',
  denied: 'kubectl denied',
  revoked: 'revoked',
  rejected: 'token rejected',
  audit: 'audit correlation',
} as const;

export const USAGE = `Usage: npm run demo [-- options]

Runs the whole k8s-ephemeral-access flow locally and prints a transcript: a real control plane,
a local OIDC issuer standing in for GitHub, the broker under its deploy/ RBAC with the example
policy, the action's main step, kubectl (one allowed and one denied call), the post step, the
revoked token being rejected, and the audit lines that join the GitHub run to the API server's
audit log.

Options:
  --keep               keep the local control plane running afterwards (stop it with
                       \`npm run cluster:down\`)
  --kubeconfig <file>  use the existing cluster this admin kubeconfig points at instead of the
                       local control plane (the demo creates and deletes two namespaces, and the
                       example ClusterRoles k8s-ea-deployer/k8s-ea-viewer if they are missing)
  -h, --help           show this help

By default a control plane the demo started is stopped at the end; one that was already running
is left running. Ctrl-C cleans up (revokes the grant, deletes the demo namespaces) and exits 130.
`;

export interface DemoOptions {
  keep: boolean;
  kubeconfig?: string;
  help: boolean;
}

export class UsageError extends Error {}

/** Parses the demo's command line; throws UsageError with the reason for anything unknown. */
export function parseDemoArgs(argv: string[]): DemoOptions {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        keep: { type: 'boolean', default: false },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.kubeconfig !== undefined && values.kubeconfig.trim() === '')
      throw new UsageError('--kubeconfig needs the path of an admin kubeconfig');
    if (values.kubeconfig !== undefined && values.keep)
      throw new UsageError('--keep is about the local control plane; it cannot be used with --kubeconfig');
    return { keep: values.keep, kubeconfig: values.kubeconfig, help: values.help };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(errorText(err));
  }
}

// ---------------------------------------------------------------------------------------------
// Transcript: numbered steps with timings, indented detail lines, and ✔ result markers.

type Write = (text: string) => void;

export class Transcript {
  private stepNo = 0;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    private readonly write: Write = (t) => void process.stdout.write(t),
  ) {}

  line(text = ''): void {
    for (const l of text.split('\n')) this.write(`      ${l}\n`.replace(/^\s+\n$/, '\n'));
  }

  result(marker: string, detail: string): void {
    this.write(`   ✔ ${marker}: ${detail}\n`);
  }

  heading(text: string): void {
    this.write(`\n${text}\n`);
  }

  elapsed(): string {
    return seconds(Date.now() - this.started);
  }

  async step<T>(title: string, fn: () => Promise<T>): Promise<T> {
    this.stepNo += 1;
    const n = String(this.stepNo).padStart(String(this.total).length);
    this.write(`\n[${n}/${this.total}] ${title}\n`);
    const t0 = Date.now();
    try {
      const value = await fn();
      this.write(`      (${seconds(Date.now() - t0)}, ${this.elapsed()} since start)\n`);
      return value;
    } catch (err) {
      this.write(`   ✘ failed after ${seconds(Date.now() - t0)}: ${errorText(err)}\n`);
      throw new ReportedError(err);
    }
  }
}

/** A step failure that the transcript has already shown. */
class ReportedError extends Error {
  constructor(readonly original: unknown) {
    super(errorText(original));
  }
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
// Duck-typed: errors from another realm (a jest VM context) are not `instanceof Error` here.
const errorText = (err: unknown): string =>
  typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);

// ---------------------------------------------------------------------------------------------
// Clean-up stack: undo actions run newest first, once. After it has started (Ctrl-C mid-step),
// anything registered later is undone at once, so a step that finishes late leaves nothing.

/** An undo action; it returns 'nothing-to-do' when there was nothing left to undo (not reported). */
type Undo = () => Promise<void | 'nothing-to-do'> | void | 'nothing-to-do';

export class CleanupStack {
  private readonly items: { label: string; undo: Undo }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly report: (label: string, err?: unknown) => void) {}

  push(label: string, undo: Undo): void {
    if (this.running) {
      void this.runOne({ label, undo });
      return;
    }
    this.items.push({ label, undo });
  }

  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.items.length > 0) await this.runOne(this.items.pop()!);
    })();
    return this.running;
  }

  private async runOne(item: { label: string; undo: Undo }): Promise<void> {
    try {
      if ((await item.undo()) !== 'nothing-to-do') this.report(item.label);
    } catch (err) {
      this.report(item.label, err);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers around kubectl, dist/ and the audit logs.

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the OIDC issuer serves from this process). */
function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** The HTTP status kubectl saw, read from its error text. */
function kubectlHttpStatus(r: CommandResult): number | undefined {
  if (r.code === 0) return 200;
  if (/\(Forbidden\)|forbidden/.test(r.stderr)) return 403;
  if (/\(Unauthorized\)|must be logged in/.test(r.stderr)) return 401;
  return undefined;
}

function apiServerReady(kubeconfig: string): boolean {
  if (!existsSync(kubeconfig)) return false;
  const r = spawnSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    {
      encoding: 'utf8',
    },
  );
  return r.status === 0 && r.stdout.trim() === 'ok';
}

const DIST_FILES = [
  'dist/main/index.js',
  'dist/post/index.js',
  'dist/post/direct-revoke.js',
  'dist/broker/index.js',
];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  return newest;
}

/** Why dist/ must be rebuilt, or undefined when the committed bundles can be used as they are. */
function distProblem(): string | undefined {
  const missing = DIST_FILES.filter((f) => !existsSync(join(repoRoot, f)));
  if (missing.length > 0) return `missing ${missing.join(', ')}`;
  // A fresh clone writes src/ a moment after dist/; only an edit made later counts as stale.
  const oldest = Math.min(...DIST_FILES.map((f) => statSync(join(repoRoot, f)).mtimeMs));
  if (newestMtime(join(repoRoot, 'src')) > oldest + 5000) return 'src/ was changed after dist/ was built';
  return undefined;
}

/** `npm run build`, under the same lock directory the test helpers use against parallel builds. */
async function buildDist(): Promise<void> {
  const lock = join(tmpdir(), 'k8s-ea-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (!distProblem()) return;
    const r = await run('npm', ['run', 'build'], process.env);
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stderr}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

interface KubeconfigDoc {
  clusters?: { name?: string; cluster?: { server?: string; 'certificate-authority-data'?: string } }[];
  users?: { user?: { token?: string } }[];
}

/** The broker and the job kubeconfigs are built from the first cluster entry's server and CA. */
function checkExistingKubeconfig(path: string): string {
  if (!existsSync(path)) throw new Error(`--kubeconfig ${path}: no such file`);
  const doc = load(readFileSync(path, 'utf8')) as KubeconfigDoc | undefined;
  const cluster = doc?.clusters?.[0]?.cluster;
  if (!cluster?.server || !cluster['certificate-authority-data'])
    throw new Error(
      `--kubeconfig ${path}: its first cluster entry needs "server" and "certificate-authority-data". ` +
        'Make a self-contained copy with: kubectl config view --raw --minify --flatten > admin.kubeconfig',
    );
  return cluster.server;
}

interface ApiAuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  stageTimestamp?: string;
  user?: { username?: string; extra?: Record<string, string[]> };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

const CREDENTIAL_ID_KEY = 'authentication.kubernetes.io/credential-id';

/** The API server's completed requests made with this credential (filtered before parsing). */
function apiAuditEventsFor(auditLog: string, credentialId: string): ApiAuditEvent[] {
  const out: ApiAuditEvent[] = [];
  for (const line of readFileSync(auditLog, 'utf8').split('\n')) {
    if (!line.includes(credentialId)) continue;
    const e = JSON.parse(line) as ApiAuditEvent;
    if (e.stage === 'ResponseComplete' && e.user?.extra?.[CREDENTIAL_ID_KEY]?.includes(credentialId))
      out.push(e);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The demo itself.

const STEP_COUNT = 12;
const DEMO_LABEL = 'k8s-ephemeral-access.demo/owner';

interface DemoContext {
  options: DemoOptions;
  transcript: Transcript;
  cleanup: CleanupStack;
  /** Checked between steps: a Ctrl-C stops the flow at the next step boundary. */
  interrupted: () => boolean;
}

export async function runDemo(ctx: DemoContext): Promise<void> {
  const { options, transcript: t, cleanup } = ctx;
  const step = <T>(title: string, fn: () => Promise<T>): Promise<T> => {
    if (ctx.interrupted()) throw new ReportedError(new Error('interrupted'));
    return t.step(title, fn);
  };

  t.heading(`k8s-ephemeral-access demo (${new Date().toISOString()})`);

  // 1. The cluster: the local control plane, or the one the user names.
  let auditLog: string | undefined;
  let adminKubeconfig: string;
  if (options.kubeconfig) {
    adminKubeconfig = resolve(options.kubeconfig);
    await step(`Use the existing cluster of ${adminKubeconfig}`, async () => {
      const server = checkExistingKubeconfig(adminKubeconfig);
      const v = await run('kubectl', [
        '--kubeconfig',
        adminKubeconfig,
        'version',
        '-o',
        'json',
        '--request-timeout=10s',
      ]);
      if (v.code !== 0) throw new Error(`cannot reach the cluster: ${v.stderr.trim()}`);
      const version = (JSON.parse(v.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion
        ?.gitVersion;
      t.line(`API server ${server} (Kubernetes ${version ?? 'unknown version'})`);
      t.line('its audit log is not readable from here: step 12 says what to look for in it');
    });
  } else {
    const { clusterInfo, up, down } = await loadClusterScript();
    const info = clusterInfo();
    const wasRunning = apiServerReady(info.kubeconfig);
    await step(
      'Start the local control plane (kube-apiserver + kube-controller-manager, built from k8s.io/kubernetes)',
      async () => {
        if (!wasRunning) {
          t.line('building it first if needed (progress below, on stderr)');
          // Registered before starting: a Ctrl-C while it starts must not leave it running.
          cleanup.push(
            options.keep
              ? 'left the local control plane running (--keep)'
              : 'stopped the local control plane',
            async () => {
              if (!options.keep) await down({ quiet: true });
            },
          );
        }
        const started = await up({ quiet: false });
        t.line(`${wasRunning ? 'reusing the running' : 'started a'} control plane at ${started.server}`);
        t.line(`audit log: ${started.auditLog}`);
        auditLog = started.auditLog;
      },
    );
    adminKubeconfig = info.kubeconfig;
  }
  // The test harness reads the cluster's coordinates from these (like jest's global setup sets them).
  process.env.K8S_EA_ADMIN_KUBECONFIG = adminKubeconfig;
  if (auditLog) process.env.K8S_EA_AUDIT_LOG = auditLog;
  else delete process.env.K8S_EA_AUDIT_LOG;

  // 2. The committed bundles.
  await step('Check the committed action and broker bundles (dist/)', async () => {
    const problem = distProblem();
    if (problem) {
      t.line(`${problem}: running npm run build`);
      await buildDist();
    }
    for (const f of DIST_FILES) t.line(`${f} (${Math.round(statSync(join(repoRoot, f)).size / 1024)} KiB)`);
  });

  // 3. Namespaces and the broker's RBAC exactly as deploy/ has it.
  const suffix = randomBytes(3).toString('hex');
  const jobNamespace = `demo-staging-${suffix}`;
  const brokerNamespace = `demo-k8s-ea-${suffix}`;
  const rbac = await step(
    `Create namespace ${jobNamespace} and install the broker's RBAC from deploy/`,
    async () => {
      const core = cluster.coreApi();
      await core.createNamespace({
        body: { metadata: { name: jobNamespace, labels: { [DEMO_LABEL]: 'demo' } } },
      });
      cleanup.push(`deleted namespace ${jobNamespace}`, async () => {
        await core.deleteNamespace({ name: jobNamespace });
      });
      const rbacApi = cluster.rbacApi();
      const missingRoles: string[] = [];
      for (const name of ['k8s-ea-deployer', 'k8s-ea-viewer'])
        if (
          !(await rbacApi.readClusterRole({ name }).then(
            () => true,
            () => false,
          ))
        )
          missingRoles.push(name);
      const installed = await brokerSupport.installBrokerRbac([jobNamespace], { brokerNamespace });
      cleanup.push(`deleted the broker's RBAC and namespace ${brokerNamespace}`, () => installed.cleanup());
      // On a cluster the user brought, remove the example job roles again if this run added them.
      if (options.kubeconfig)
        for (const name of missingRoles)
          cleanup.push(`deleted ClusterRole ${name}`, async () => {
            await rbacApi.deleteClusterRole({ name });
          });
      t.line(`broker identity: system:serviceaccount:${brokerNamespace}:${installed.serviceAccount}`);
      t.line(`applied from deploy/: ${brokerSupport.RBAC_FILES.join(', ')}`);
      t.line(
        `(namespace "staging" in deploy/ is ${jobNamespace} here, "k8s-ephemeral-access" is ${brokerNamespace})`,
      );
      return installed;
    },
  );

  // 4. GitHub's token service, locally.
  const issuer = await step('Start a local OIDC issuer standing in for GitHub Actions', async () => {
    const started = await startOidcIssuer();
    cleanup.push('stopped the OIDC issuer', () => started.close());
    const c = started.claims;
    t.line(`issuer ${started.issuer} (discovery, JWKS, RS256; and the runner's ID-token endpoint)`);
    t.line(`the job: ${c.repository} (repository_id ${c.repository_id}, owner_id ${c.repository_owner_id})`);
    t.line(
      `         run ${c.run_id} attempt ${c.run_attempt}, workflow "${c.workflow}", ${c.event_name} to ${c.ref}, actor ${c.actor}`,
    );
    return started;
  });

  // 5. The broker with the example policy.
  const broker = await step(
    'Start the broker (dist/broker/index.js) with deploy/examples/policy.yaml',
    async () => {
      const policy = load(readFileSync(join(repoRoot, 'deploy/examples/policy.yaml'), 'utf8')) as {
        rules: { name: string; namespaces: string[] }[];
      };
      for (const rule of policy.rules)
        rule.namespaces = rule.namespaces.map((n) => (n === 'staging' ? jobNamespace : n));
      const started = await brokerSupport.startBroker({
        policyYaml: dump(policy),
        issuer: issuer.issuer,
        namespaces: [jobNamespace],
        rbac,
        https: true,
        reaperIntervalSeconds: 5,
        entry: join(repoRoot, 'dist/broker/index.js'),
      });
      cleanup.push('stopped the broker', async () => {
        await started.stop();
      });
      t.line(
        `listening on ${started.url} (HTTPS, self-signed certificate passed to the action as broker-ca)`,
      );
      t.line(`trusts issuer ${issuer.issuer}, audience k8s-ephemeral-access`);
      t.line(`policy rules: ${policy.rules.map((r) => r.name).join(', ')}`);
      return started;
    },
  );
  const brokerCa = readFileSync(
    (load(readFileSync(broker.configPath, 'utf8')) as { tls: { certFile: string } }).tls.certFile,
    'utf8',
  );

  // 6. The action's main step, as the runner runs it.
  const job = createJob({ idToken: { url: issuer.idTokenRequestUrl, token: issuer.idTokenRequestToken } });
  cleanup.push("removed the runner's temporary directories", () => job.cleanup());
  let postDone = false;
  let mainRun: Promise<unknown> | undefined;
  cleanup.push('ran the post step (revoke + shred)', async () => {
    if (!mainRun || postDone) return 'nothing-to-do';
    // Post acts on the state main saves when it ends: let an interrupted main finish first.
    await mainRun.catch(() => undefined);
    if (postDone) return 'nothing-to-do';
    postDone = true;
    showStepLog(t, await job.post());
  });
  const inputs = {
    'broker-url': broker.url,
    'broker-ca': brokerCa,
    namespace: jobNamespace,
    role: 'deployer',
    ttl: '600',
  };
  const granted = await step(
    "Run the action's main step (dist/main/index.js) as the GitHub runner does",
    async () => {
      t.line('uses: octo-org/k8s-ephemeral-access@v1');
      t.line('with:');
      for (const [k, v] of Object.entries(inputs))
        t.line(`  ${k}: ${k === 'broker-ca' ? "<the broker's CA certificate>" : v}`);
      const run = job.main(inputs);
      mainRun = run;
      const main = await run;
      showStepLog(t, main);
      if (main.exitCode !== 0)
        throw new Error(`the main step failed (exit ${main.exitCode}): ${main.errors.join('; ')}`);
      const kubeconfigPath = main.outputs.kubeconfig!;
      // Kept in memory only, for the rejection check after post; never printed.
      const doc = load(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigDoc;
      const token = doc.users?.[0]?.user?.token;
      if (!token) throw new Error('the written kubeconfig has no token');
      const credentialId = `JTI=${String(decodeJwt(token).jti)}`;
      const grantId = main.outputs['grant-id']!;
      t.line('outputs:');
      for (const [k, v] of Object.entries(main.outputs)) t.line(`  ${k}: ${v}`);
      t.result(
        MARKERS.granted,
        `grant ${grantId} = system:serviceaccount:${main.outputs.namespace}:${main.outputs['service-account']}, ` +
          `credential ${credentialId}, expires ${main.outputs['expires-at']} (the token itself is masked and never printed)`,
      );
      return { kubeconfigPath, token, credentialId, grantId, namespace: main.outputs.namespace! };
    },
  );

  // 7. + 8. Later steps of the job, with the exported KUBECONFIG.
  await step('A later step runs kubectl with the exported KUBECONFIG: an allowed call', async () => {
    const whoami = await job.exec('kubectl', [
      'auth',
      'whoami',
      '-o',
      'jsonpath={.status.userInfo.username}',
    ]);
    t.line(`$ kubectl auth whoami   -> ${whoami.stdout.trim() || whoami.stderr.trim()}`);
    const r = await job.exec('kubectl', [
      'create',
      'configmap',
      'hello-from-ci',
      '--from-literal=greeting=hello',
    ]);
    t.line(`$ kubectl create configmap hello-from-ci --from-literal=greeting=hello`);
    t.line(`${(r.stdout + r.stderr).trim()}`);
    if (r.code !== 0)
      throw new Error('kubectl create configmap was refused, but the deployer role allows it');
    t.result(
      MARKERS.allowed,
      `created configmap/hello-from-ci in ${granted.namespace} (role deployer allows configmaps)`,
    );
  });
  await step('The same kubectl, outside the role: a denied call', async () => {
    const r = await job.exec('kubectl', ['get', 'secrets']);
    t.line('$ kubectl get secrets');
    t.line(`${(r.stdout + r.stderr).trim()}`);
    if (r.code === 0 || kubectlHttpStatus(r) !== 403)
      throw new Error(`expected 403 Forbidden for secrets, got exit ${r.code}: ${r.stderr.trim()}`);
    t.result(MARKERS.denied, 'secrets are forbidden (403): no job role can read Secrets');
  });

  // 9. The post step.
  const postEnded = await step(
    "Run the action's post step (dist/post/index.js): revoke and shred",
    async () => {
      postDone = true;
      const post = await job.post();
      const ended = Date.now();
      showStepLog(t, post);
      if (post.exitCode !== 0) throw new Error(`the post step failed (exit ${post.exitCode})`);
      if (post.warnings.length > 0) throw new Error(`the post step warned: ${post.warnings.join('; ')}`);
      const left = brokerSupport
        .managedObjects([granted.namespace])
        .filter((o) => o.includes(granted.grantId));
      if (left.length > 0) throw new Error(`grant objects still present: ${left.join(', ')}`);
      if (existsSync(granted.kubeconfigPath)) throw new Error(`${granted.kubeconfigPath} still exists`);
      t.result(
        MARKERS.revoked,
        `grant ${granted.grantId} is gone (no ServiceAccount, RoleBinding or Role left) and the kubeconfig was shredded`,
      );
      return ended;
    },
  );

  // 10. The API server stops accepting the token once its auth cache drops the deleted SA.
  await step('Use the revoked token again until the API server rejects it', async () => {
    t.line('(the API server caches token authentications for ~10 s: 403 until then, 401 after)');
    // A private 0700 directory with a 0600 file for kubectl, removed right after; the token is dead.
    const kc = cluster.tokenKubeconfig(granted.token, granted.namespace);
    cleanup.push('removed the temporary kubeconfig of the revoked token', () => {
      if (!existsSync(kc.path)) return 'nothing-to-do';
      kc.cleanup();
    });
    try {
      const seen: string[] = [];
      for (;;) {
        const r = await run('kubectl', [
          '--kubeconfig',
          kc.path,
          '--request-timeout=10s',
          'get',
          'configmaps',
        ]);
        const status = kubectlHttpStatus(r);
        const at = seconds(Date.now() - postEnded);
        if (status === 401) {
          t.line(`${seen.length} request(s) answered 403 Forbidden (authorization already gone)`);
          t.result(MARKERS.rejected, `401 Unauthorized ${at} after the post step ended`);
          return;
        }
        if (status !== 403) throw new Error(`unexpected answer to the revoked token: ${r.stderr.trim()}`);
        seen.push(at);
        if (Date.now() - postEnded > 60_000) throw new Error('the token was still accepted after 60 s');
        await sleep(500);
      }
    } finally {
      kc.cleanup();
    }
  });

  // 11. + 12. Audit: the broker's lines and the API server's, joined by the credential id.
  await step("The broker's audit lines for this grant", async () => {
    for (const a of broker.audit().filter((l) => l.grantId === granted.grantId)) {
      const gh = (a.github ?? {}) as Record<string, unknown>;
      t.line(
        `${String(a.time)} ${String(a.action)}${a.by ? ` by ${String(a.by)}` : ''}: grant ${String(a.grantId)}` +
          (a.credentialId ? `, ${String(a.credentialId)}` : '') +
          (gh.run_id ? `, run ${String(gh.repository)}#${String(gh.run_id)}/${String(gh.run_attempt)}` : ''),
      );
    }
  });
  await step("Join the GitHub run to the API server's audit log by credential id", async () => {
    const exchange = broker.audit().find((l) => l.action === 'exchange' && l.grantId === granted.grantId);
    if (!exchange) throw new Error('the broker wrote no exchange audit line for this grant');
    if (exchange.credentialId !== granted.credentialId)
      throw new Error(
        `the broker recorded ${String(exchange.credentialId)}, the token says ${granted.credentialId}`,
      );
    const gh = exchange.github as Record<string, string>;
    const run = `${gh.repository} run ${gh.run_id} attempt ${gh.run_attempt} (workflow "${gh.workflow}", sha ${gh.sha?.slice(0, 7)}, actor ${gh.actor}, jti ${gh.jti})`;
    t.line(`broker:     ${run}`);
    t.line(`            -> grant ${granted.grantId}, credential ${granted.credentialId}`);
    const jq = `jq -c 'select(.user.extra["${CREDENTIAL_ID_KEY}"]? == ["${granted.credentialId}"])'`;
    if (!auditLog) {
      t.line(`API server: find this token's requests in your cluster's audit log with`);
      t.line(`            ${jq} <audit log>`);
      t.result(
        MARKERS.audit,
        `broker line for ${run} carries ${granted.credentialId}; look that id up in the cluster's audit log`,
      );
      return;
    }
    const log = auditLog;
    // The audit backend is blocking: the events are written before kubectl got its answers.
    const events = await cluster.waitFor(
      'the allowed and the denied kubectl call in the audit log',
      () => {
        const found = apiAuditEventsFor(log, granted.credentialId);
        const create = found.some((e) => e.verb === 'create' && e.responseStatus?.code === 201);
        const denied = found.some((e) => e.requestURI.includes('/secrets') && e.responseStatus?.code === 403);
        return create && denied ? found : undefined;
      },
      10_000,
      250,
    );
    const jobCalls = events.filter((e) => Date.parse(e.stageTimestamp ?? '') < postEnded);
    const checkCalls = events.length - jobCalls.length;
    t.line(`API server: ${events.length} requests made with ${granted.credentialId}; the job's own:`);
    for (const e of jobCalls)
      t.line(
        `            ${e.stageTimestamp ?? ''} ${e.verb.padEnd(6)} ${String(e.responseStatus?.code ?? '?')} ` +
          `${(e.annotations?.['authorization.k8s.io/decision'] ?? '').padEnd(6)} ${e.requestURI.split('?')[0]}`,
      );
    if (checkCalls > 0) t.line(`            (+ ${checkCalls} from the rejection check in step 10)`);
    t.line(`            all of them: ${jq} ${log}`);
    const username = events[0]?.user?.username ?? '';
    t.result(
      MARKERS.audit,
      `${gh.repository} run ${gh.run_id} -> ${granted.credentialId} -> ${events.length} API server requests as ${username} ` +
        '(create configmaps 201, list secrets 403, ...)',
    );
  });
}

/** What the runner's log would show for a step: its lines with every registered secret masked. */
function showStepLog(t: Transcript, step: { log: string; stderr: string; masks: string[] }): void {
  const mask = (text: string) => step.masks.reduce((acc, m) => (m ? acc.split(m).join('***') : acc), text);
  for (const l of mask(step.log).split('\n')) if (l.trim() !== '') t.line(`| ${l}`);
  for (const l of mask(step.stderr).split('\n')) if (l.trim() !== '') t.line(`| (stderr) ${l}`);
}

// ---------------------------------------------------------------------------------------------
// Entry: options, signals, clean-up, exit code.

async function main(): Promise<number> {
  let options: DemoOptions;
  try {
    options = parseDemoArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`demo: ${errorText(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const transcript = new Transcript(STEP_COUNT);
  const cleanup = new CleanupStack((label, err) =>
    transcript.line(err ? `✘ could not finish "${label}": ${errorText(err)}` : `- ${label}`),
  );

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`demo: second ${signal}: exiting without finishing the clean-up\n`);
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    }
    signalled = signal;
    transcript.heading(`Interrupted (${signal}): cleaning up (press Ctrl-C again to abandon the clean-up)`);
    void cleanup.runAll().finally(() => {
      transcript.heading(`Cleaned up after ${transcript.elapsed()}.`);
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failed: unknown;
  try {
    await runDemo({ options, transcript, cleanup, interrupted: () => signalled !== undefined });
  } catch (err) {
    failed = err;
  }
  // The signal handler owns the rest of the run (clean-up, exit code).
  if (signalled) return new Promise<number>(() => undefined);

  transcript.heading('Clean up');
  await cleanup.runAll();
  if (failed) {
    if (!(failed instanceof ReportedError)) transcript.heading(`demo failed: ${errorText(failed)}`);
    transcript.heading(`Demo FAILED after ${transcript.elapsed()}.`);
    return 1;
  }
  transcript.heading(`Demo finished in ${transcript.elapsed()}: ${Object.values(MARKERS).join(', ')}.`);
  if (options.keep) {
    const info = (await loadClusterScript()).clusterInfo();
    transcript.line('The local control plane is still running (--keep). To explore it:');
    transcript.line(`  export KUBECONFIG=${info.kubeconfig}`);
    transcript.line('  kubectl get namespaces');
    transcript.line(`  tail -f ${info.auditLog}`);
    transcript.line('Stop it with: npm run cluster:down');
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
