// Security rules for GitHub Actions workflows, beyond what actionlint checks (check-workflows.mjs runs
// them on every workflow here and in examples/; __tests__/unit/workflow-rules.test.ts proves each one):
// - pinned: every `uses:` names a full commit SHA with its version in a comment (`@<40 hex> # v1.2.3`),
//   since a tag can be moved to other code; local `./` actions and `docker://…@sha256:` images excepted;
// - permissions: every job has explicit `permissions:`, or the workflow has read-only ones it inherits
//   (a write permission belongs on the one job that needs it; `write-all`/`read-all` are never least);
// - injection: no untrusted context (text an outsider controls: titles, bodies, branch names, commit
//   messages, inputs) is interpolated into a `run:` script or github-script's `script:`, where it would be
//   shell or JavaScript; pass it through `env:` and quote the variable instead.
// A finding may be waived only with a written reason: WAIVERS below, keyed by file, rule and the text.
import { load } from 'js-yaml';

/**
 * @typedef {{ file: string, line: number, rule: 'pinned' | 'permissions' | 'injection', message: string }} Finding
 * @typedef {{ file: string, rule: Finding['rule'], match: string, reason: string }} Waiver
 */

/**
 * Findings accepted on purpose, each with its reason (none is accepted silently).
 * @type {Waiver[]}
 */
export const WAIVERS = [];

/**
 * Unpinned references the examples may make, and why: they are placeholders for the reader's own
 * repositories (this action, published under the reader's chosen owner, and the reader's own reusable
 * workflow), which have no SHA we could write down. docs/releasing.md tells the reader to pin the
 * release's SHA; a reusable workflow is called by tag there because the policy example matches its
 * `job_workflow_ref` on `@refs/tags/v*`. Every real third-party action in the examples is pinned.
 */
export const EXAMPLE_PLACEHOLDERS = [/^octo-org\/[\w.-]+(\/[\w./-]+)?@v\d+$/];

const SHA = /^[0-9a-f]{40}$/;
const VERSION_COMMENT = /#\s*v?\d+(\.\d+)*\S*/;

/**
 * Contexts an outsider can set: fields of the event payload that carry user text, branch names,
 * and inputs (a dispatch or a caller supplies them). After `github.event.` (or alone, for head_ref).
 */
const UNTRUSTED = [
  /\bgithub\.head_ref\b/,
  /\bgithub\.event\.(issue|pull_request|discussion|comment|review|review_comment)\.(title|body)\b/,
  /\bgithub\.event\.pull_request\.head\.(ref|label|repo\.default_branch)\b/,
  /\bgithub\.event\.(head_commit|commits\[?[^\]]*\]?|commits\.\*)\.(message|author\.(email|name))\b/,
  /\bgithub\.event\.commits\b/,
  /\bgithub\.event\.pages\b/,
  /\bgithub\.event\.workflow_run\.(head_branch|head_commit|display_title|pull_requests)\b/,
  /\bgithub\.event\.(inputs|client_payload)\b/,
  /\binputs\.[\w-]+/,
];

/** Every `${{ … }}` in a string. */
const expressions = (text) =>
  [...String(text).matchAll(/\$\{\{([\s\S]*?)\}\}/g)].map((m) => String(m[1]).trim());

/** The 1-based line of the first occurrence of `needle` in `source` at or after `from`. */
function lineOf(source, needle, from = 0) {
  const at = source.indexOf(needle, from);
  return at < 0 ? 0 : source.slice(0, at).split('\n').length;
}

/**
 * @param {string} uses
 * @param {string} rawLine the source line, for its comment
 * @param {{ examples: boolean }} o
 * @returns {string | undefined} what is wrong, or nothing
 */
export function pinProblem(uses, rawLine, o) {
  if (uses.startsWith('./')) return undefined;
  if (uses.startsWith('docker://'))
    return /@sha256:[0-9a-f]{64}$/.test(uses) ? undefined : `${uses}: pin the image by digest (@sha256:…)`;
  if (o.examples && EXAMPLE_PLACEHOLDERS.some((p) => p.test(uses))) return undefined;
  const ref = uses.split('@')[1] ?? '';
  if (!SHA.test(ref)) return `${uses}: pin a full commit SHA (@<40 hex> # vX.Y.Z), not a tag or branch`;
  const comment = rawLine.includes('#') ? rawLine.slice(rawLine.indexOf('#')) : '';
  if (!VERSION_COMMENT.test(comment)) return `${uses}: say which version the SHA is in a comment (# vX.Y.Z)`;
  return undefined;
}

/** @param {unknown} p */
function isReadOnly(p) {
  if (p === undefined || p === null) return false;
  if (typeof p === 'string') return false; // read-all / write-all: never least
  if (typeof p !== 'object') return false;
  return Object.values(p).every((v) => v === 'read' || v === 'none');
}

/**
 * @param {string} source the workflow's text
 * @param {string} file its path, for the findings
 * @param {{ examples?: boolean }} [o] examples/ may use EXAMPLE_PLACEHOLDERS
 * @returns {Finding[]}
 */
export function checkWorkflow(source, file, o = {}) {
  /** @type {any} */
  const wf = load(source);
  /** @type {Finding[]} */
  const findings = [];
  const lines = source.split('\n');
  const add = (rule, line, message) => findings.push({ file, line, rule, message });
  const jobs = wf && typeof wf.jobs === 'object' && wf.jobs ? wf.jobs : {};

  // uses: in steps and in jobs that call reusable workflows, each occurrence on its own line.
  lines.forEach((text, i) => {
    const m = /^\s*(?:-\s+)?uses:\s*['"]?([^'"\s#]+)['"]?/.exec(text);
    if (!m) return;
    const problem = pinProblem(String(m[1]), text, { examples: o.examples ?? false });
    if (problem) add('pinned', i + 1, problem);
  });

  const workflowReadOnly = isReadOnly(wf?.permissions);
  if (wf && 'permissions' in wf && !workflowReadOnly)
    add(
      'permissions',
      lineOf(source, 'permissions:'),
      'workflow-level permissions must be read-only (contents: read); give write permissions to the job that needs them',
    );
  for (const [id, job] of Object.entries(jobs)) {
    const at = lineOf(source, `\n  ${id}:`) + 1;
    if (!job || typeof job !== 'object') continue;
    if (!('permissions' in job) && !workflowReadOnly)
      add(
        'permissions',
        at,
        `job ${id} has no permissions: (and the workflow has no read-only ones to inherit)`,
      );
    else if ('permissions' in job && typeof job.permissions === 'string')
      add(
        'permissions',
        at,
        `job ${id}: permissions: ${job.permissions} is not least privilege; list the scopes`,
      );

    for (const step of Array.isArray(job.steps) ? job.steps : []) {
      const scripts = [
        step?.run,
        /github-script@/.test(String(step?.uses ?? '')) ? step?.with?.script : undefined,
      ];
      for (const script of scripts.filter((s) => typeof s === 'string'))
        for (const expr of expressions(script)) {
          const bad = UNTRUSTED.find((re) => re.test(expr));
          if (bad)
            add(
              'injection',
              lineOf(source, expr, source.indexOf(String(script).split('\n')[0] ?? '')),
              `job ${id}: \${{ ${expr} }} is interpolated into a script; pass it through env: and use the variable`,
            );
        }
    }
  }
  return findings.filter(
    (f) => !WAIVERS.some((w) => w.file === f.file && w.rule === f.rule && f.message.includes(w.match)),
  );
}
