// deploy/monitoring/: every metric an alert or a dashboard panel uses is one the broker serves at /metrics
// (the internal listener, with the default process metrics the runtime turns on), and every alert has the
// shape Prometheus and the runbook in docs/operations.md expect.
import { beforeAll, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { createBrokerApp } from '../../../src/broker/app.js';
import { createMetrics } from '../../../src/broker/metrics.js';
import { brokerRequest } from '../../../test/support/broker-request.js';
import { fakeBrokerDeps, serveOnLoopback } from '../../../test/support/fake-broker.js';
import { repoRoot } from '../../../test/support/repo-root.js';

const dir = join(repoRoot, 'deploy', 'monitoring');
type Rule = {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: Record<string, string>;
};
const rules = (
  load(readFileSync(join(dir, 'prometheusrule.yaml'), 'utf8')) as { spec: { groups: { rules: Rule[] }[] } }
).spec.groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(join(dir, 'grafana-dashboard.json'), 'utf8')) as {
  panels: { title: string; targets: { expr: string }[] }[];
};

/** The broker's metric names, from /metrics as the broker serves it (HELP/TYPE lines list every one). */
let served: Set<string>;
beforeAll(async () => {
  const { deps } = fakeBrokerDeps({ metrics: createMetrics({ defaultMetrics: true }) }); // as runtime.ts creates them
  const srv = await serveOnLoopback(createBrokerApp(deps).handleInternal);
  try {
    const r = await brokerRequest<string>(srv.url, 'GET', '/metrics');
    expect(r.status).toBe(200);
    served = new Set();
    for (const [, name, type] of r.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      served.add(name!);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) served.add(name + s);
    }
  } finally {
    await srv.close(0);
  }
});

/** Metric names in a PromQL expression: the broker's prefixes (functions and labels never start so). */
const metricsIn = (expr: string) => [...expr.matchAll(/\bk8s_ea_[a-z0-9_]+/g)].map((m) => m[0]);

test('every alert and every dashboard panel uses only metrics the broker serves', () => {
  const used = [
    ...rules.map((r) => r.expr),
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
  ];
  const names = [...new Set(used.flatMap(metricsIn))];
  expect(names.length).toBeGreaterThan(10);
  expect(names.filter((n) => !served.has(n))).toEqual([]);
  // Every panel queries something of the broker's.
  for (const p of dashboard.panels)
    expect([p.title, p.targets.flatMap((t) => metricsIn(t.expr)).length]).not.toEqual([p.title, 0]);
});

/**
 * Metric families the broker serves that no alert or panel uses, on purpose, each with why. Any other
 * served family without an alert or a panel fails the next test: a new metric needs one, or a line here.
 */
const UNMONITORED: Record<string, string> = {
  k8s_ea_self_revoke_shared:
    'which self-revoke mechanism direct-mode grants get; either keeps every guarantee, and a change is logged',
};
/** The Node process metrics (prom-client defaults, prefixed k8s_ea_broker_): only CPU and memory are shown. */
const PROCESS_METRICS_SHOWN = [
  'k8s_ea_broker_process_cpu_seconds_total',
  'k8s_ea_broker_process_resident_memory_bytes',
];
const PROCESS_METRICS_WHY =
  "Node's own process and runtime metrics (heap spaces, GC, event loop lag, handles): for debugging, not for alerts";

test('every metric family the broker serves has an alert or a dashboard panel, or is listed as unmonitored with a reason', () => {
  const used = new Set(
    [...rules.map((r) => r.expr), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))].flatMap(
      metricsIn,
    ),
  );
  const family = (n: string) => n.replace(/_(bucket|sum|count)$/, '');
  const families = [...new Set([...served].map(family))].filter((n) => served.has(n));
  const uncovered = families.filter(
    (n) =>
      !used.has(n) &&
      !used.has(`${n}_bucket`) &&
      !Object.hasOwn(UNMONITORED, n) &&
      !(n.startsWith('k8s_ea_broker_') && !PROCESS_METRICS_SHOWN.includes(n)),
  );
  expect(uncovered).toEqual([]);
  expect(PROCESS_METRICS_WHY.length).toBeGreaterThan(0);
  // The gateway, renewals and policy reloads, which had neither, have both now.
  for (const prefix of ['k8s_ea_gateway_', 'k8s_ea_renewal', 'k8s_ea_policy_'])
    expect([...used].filter((n) => n.startsWith(prefix)).length).toBeGreaterThan(0);
  const alerted = new Set(rules.flatMap((r) => metricsIn(r.expr)));
  for (const n of [
    'k8s_ea_gateway_requests_total',
    'k8s_ea_renewals_total',
    'k8s_ea_policy_reload_failures_total',
  ])
    expect([n, alerted.has(n)]).toEqual([n, true]);
  // Each listed one is served (no stale entry).
  for (const n of Object.keys(UNMONITORED)) expect([n, served.has(n)]).toEqual([n, true]);
});

test('the alerts the issue asks for are there, each with a severity, a summary and a valid duration', () => {
  const byName = new Map(rules.map((r) => [r.alert, r]));
  expect(metricsIn(byName.get('K8sEaReaperStalled')!.expr)).toEqual([
    'k8s_ea_reaper_last_pass_timestamp_seconds',
  ]);
  expect(metricsIn(byName.get('K8sEaExpiredGrantsPresent')!.expr)).toEqual(['k8s_ea_expired_grants']);
  expect(byName.get('K8sEaExchangeErrorRatio')!.expr).toMatch(/result="error"/);
  expect(byName.get('K8sEaJwksUnavailable')!.expr).toMatch(/reason="jwks_unavailable"/);
  for (const r of rules) {
    expect(r.alert).toMatch(/^K8sEa[A-Za-z]+$/);
    expect(['critical', 'warning', 'info']).toContain(r.labels.severity);
    expect(r.annotations.summary?.length).toBeGreaterThan(10);
    if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
  }
  // Alert names are what docs/operations.md's runbook lists.
  const ops = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  for (const r of rules) expect([r.alert, ops.includes(`\`${r.alert}\``)]).toEqual([r.alert, true]);
});

test('the dashboard is Grafana JSON with a Prometheus data source variable and distinct panel ids', () => {
  const d = dashboard as unknown as {
    uid: string;
    templating: { list: { name: string; type: string }[] };
    panels: { id: number; datasource: { uid: string } }[];
  };
  expect(d.uid).toBe('k8s-ephemeral-access');
  expect(d.templating.list).toEqual([expect.objectContaining({ name: 'datasource', type: 'datasource' })]);
  expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
  for (const p of d.panels) expect(p.datasource.uid).toBe('${datasource}');
});

test("docs/operations.md's metrics table lists every metric of the broker's own", () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Monitoring'), doc.indexOf('### Alerts'));
  const documented = new Set([...table.matchAll(/^\| `(k8s_ea_[a-z0-9_]+)/gm)].map((m) => m[1]));
  const own = [...served].filter((n) => !n.startsWith('k8s_ea_broker_') && !/_(bucket|sum|count)$/.test(n));
  expect(own.length).toBeGreaterThan(20);
  expect(own.filter((n) => !documented.has(n))).toEqual([]);
});
