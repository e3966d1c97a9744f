import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FIXED_METRICS } from '../helpers/metric-names.ts';
import {
  baseMetricName,
  dashboardExpressions,
  metricNamesIn,
  registeredMetricNames,
  ruleTemplateExpressions,
} from '../helpers/promql-metrics.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHART = join(ROOT, 'charts/postern');
const KNOWN = new Set(Object.keys(FIXED_METRICS));

const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards/postern.json'), 'utf8'));
const rules = ruleTemplateExpressions(readFileSync(join(CHART, 'templates/prometheusrule.yaml'), 'utf8'));

/** Names in `exprs` that are neither a fixed metric (or its histogram series) nor in `alsoAllowed`. */
function unknownNames(exprs: string[], alsoAllowed: ReadonlySet<string> = new Set()): string[] {
  const names = exprs.flatMap(metricNamesIn).map((n) => baseMetricName(n, KNOWN));
  return [...new Set(names.filter((n) => !KNOWN.has(n) && !alsoAllowed.has(n)))];
}

describe('metric names in the dashboard and the Prometheus rules', () => {
  it('the PromQL name extractor finds metrics and ignores functions, labels, ranges and grouping', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (pool, le) (rate(postern_delivery_duration_seconds_bucket{namespace=~"$namespace", x="a b"}[$__rate_interval])))',
      ),
      ['postern_delivery_duration_seconds_bucket'],
    );
    assert.deepEqual(metricNamesIn('sum(rate(a_total[5m])) / sum without (x) (b_total) > bool 1'), [
      'a_total',
      'b_total',
    ]);
    assert.deepEqual(metricNamesIn('label_values(postern_smtp_sessions_active, namespace)'), [
      'postern_smtp_sessions_active',
    ]);
    assert.equal(
      baseMetricName('postern_accept_duration_seconds_bucket', KNOWN),
      'postern_accept_duration_seconds',
    );
  });

  it('every dashboard panel and variable queries only metrics from the fixed list', () => {
    const exprs = dashboardExpressions(dashboard);
    assert.ok(exprs.length >= 15, `expected the dashboard's queries, found ${exprs.length}`);
    assert.deepEqual(unknownNames(exprs), []);
  });

  it('the dashboard covers queue depth, oldest age, ingress, latency, delivery, bounce rate, autoscaler and operator', () => {
    const used = new Set(
      dashboardExpressions(dashboard)
        .flatMap(metricNamesIn)
        .map((n) => baseMetricName(n, KNOWN)),
    );
    for (const m of [
      'postern_queue_depth',
      'postern_queue_oldest_age_seconds',
      'postern_messages_received_total',
      'postern_accept_duration_seconds',
      'postern_delivery_attempts_total',
      'postern_bounces_total',
      'postern_delivery_duration_seconds',
      'postern_delivery_replicas',
      'postern_delivery_lag',
      'postern_operator_reconcile_total',
    ]) {
      assert.ok(used.has(m), `no dashboard panel queries ${m}`);
    }
  });

  it('every recording rule and alert uses fixed-list metrics or recording rules defined alongside', () => {
    assert.ok(rules.exprs.length >= 10, `expected the rule expressions, found ${rules.exprs.length}`);
    assert.ok(rules.records.includes('postern:bounce_rate:ratio_rate5m'));
    assert.deepEqual(unknownNames(rules.exprs, new Set(rules.records)), []);
  });

  it('panel ids are unique and every panel has a data source and a title', () => {
    const panels = (
      dashboard.panels as { id: number; type: string; title: string; datasource?: unknown }[]
    ).filter((p) => p.type !== 'row');
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length);
    for (const p of panels) {
      assert.ok(p.title, `panel ${p.id} has no title`);
      assert.ok(p.datasource, `panel "${p.title}" has no data source`);
    }
  });
});

describe('the fixed metric list matches what the services register', () => {
  const byFile = new Map<string, string[]>();
  for (const [metric, file] of Object.entries(FIXED_METRICS))
    byFile.set(file, [...(byFile.get(file) ?? []), metric]);
  for (const [file, metrics] of byFile) {
    const path = join(ROOT, file);
    it(`${file} registers ${metrics.length} dashboard metrics`, {
      skip: !existsSync(path) && `${file} does not exist yet`,
    }, () => {
      const registered = new Set(registeredMetricNames(readFileSync(path, 'utf8')));
      assert.deepEqual(
        metrics.filter((m) => !registered.has(m)),
        [],
        `${file} does not register these fixed-list metrics`,
      );
    });
  }
});
