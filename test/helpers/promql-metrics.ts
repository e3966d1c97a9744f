/**
 * Pulls metric names out of PromQL expressions, so tests can prove every dashboard panel and Prometheus rule
 * queries a series Postern really exports. Not a PromQL parser: it removes the parts that cannot hold a metric
 * name (strings, label matchers, ranges, grouping clauses) and keeps identifiers that are not function calls.
 */

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/** Metric (or recording rule) names referenced by one PromQL expression. */
export function metricNamesIn(expr: string): string[] {
  const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(expr);
  if (labelValues?.[1]) return [labelValues[1]];
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  // An identifier followed by '(' is a function or aggregation, never a metric.
  for (const m of stripped.matchAll(/(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\s*\(|[\w:])/g)) {
    const name = m[1]!;
    if (!KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** The series name a histogram's `_bucket`, `_sum` and `_count` series belong to, given the known metrics. */
export function baseMetricName(name: string, known: ReadonlySet<string>): string {
  if (known.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m?.[1] && known.has(m[1]) ? m[1] : name;
}

/** Every `expr` (panel targets, templating queries) in a Grafana dashboard JSON document. */
export function dashboardExpressions(dashboard: unknown): string[] {
  const out: string[] = [];
  const walk = (node: unknown, key?: string) => {
    if (typeof node === 'string') {
      if (key === 'expr' || key === 'query' || key === 'definition') out.push(node);
    } else if (Array.isArray(node)) {
      for (const n of node) walk(n);
    } else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) walk(v, k);
    }
  };
  walk(dashboard);
  // Only Prometheus queries: the data source variable's `query` is the plugin id "prometheus".
  return out.filter((q) => q !== 'prometheus');
}

/** `expr:` lines of a Helm PrometheusRule template, with template actions (thresholds) replaced by a number. */
export function ruleTemplateExpressions(template: string): { records: string[]; exprs: string[] } {
  const records = [...template.matchAll(/^\s*- record:\s*(\S+)\s*$/gm)].map((m) => m[1]!);
  const exprs = [...template.matchAll(/^\s*expr:\s*(.+)$/gm)].map((m) => m[1]!.replace(/\{\{.*?\}\}/g, '1'));
  return { records, exprs };
}

/** Metric names a prom-client metrics module registers (`name: 'postern_…'`). */
export function registeredMetricNames(source: string): string[] {
  return [...source.matchAll(/\bname:\s*'(postern_[a-z0-9_]+)'/g)].map((m) => m[1]!);
}
