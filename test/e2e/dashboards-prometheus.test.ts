/**
 * The Grafana dashboard shows real data: a real Prometheus scrapes a running Postern (local mode) after some mail
 * went through it, and every dashboard query about the mail services returns series. Operator panels are covered
 * by the operator tier (the operator does not run in local mode); here they must at least parse.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../services/local/nats-server.ts';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';
import { findPrometheus } from '../helpers/prometheus.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

interface Panel {
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(
  readFileSync(new URL('../../charts/postern/dashboards/postern.json', import.meta.url), 'utf8'),
) as { panels: Panel[] };
const queries = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({
    title: p.title,
    // Grafana's variables, as Grafana would expand them for "all namespaces".
    expr: t.expr.replaceAll('$namespace', '.*').replaceAll('$__rate_interval', '1m'),
  })),
);
const OPERATOR_ONLY = /postern_(operator_|delivery_replicas|delivery_lag)/;

describe('the dashboard against a real Prometheus scraping Postern', () => {
  let postern: TestPostern;
  let sink: SmtpSink;
  let prometheus: ChildProcess;
  let dir: string;
  let api: string;

  const query = async (expr: string) => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };

  before(async () => {
    sink = await startSmtpSink({
      host: '127.0.0.9',
      onRcpt: (rcpt) => {
        if (rcpt.startsWith('gone@')) return { code: 550, message: '5.1.1 no such user' };
        if (rcpt.startsWith('later@')) return { code: 451, message: '4.2.0 try again later' };
        return 'accept';
      },
    });
    postern = await startPostern({
      config: smarthostRelayConfig({ host: '127.0.0.9', port: sink.port }),
    });
    const targets = [...postern.supervisor.children.values()].map((c) => String(c.ready['metrics']));
    assert.ok(
      targets.every((t) => /^127\.0\.0\.1:\d+$/.test(t)),
      `metrics addresses: ${targets.join(', ')}`,
    );
    dir = mkdtempSync(join(tmpdir(), 'postern-prometheus-'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: postern\n    static_configs: [{ targets: ${JSON.stringify(targets)} }]\n`,
    );
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      findPrometheus(),
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    // Traffic for every kind of panel: accepted, rejected (relay denied), delivered, deferred and bounced.
    for (const to of ['a@remote.test', 'b@remote.test', 'gone@remote.test', 'later@remote.test']) {
      const r = await swaks([
        '--server',
        `127.0.0.1:${postern.smtpPort}`,
        '--from',
        'me@sender.test',
        '--to',
        to,
      ]);
      assert.equal(r.code, 0, r.transcript);
    }
    await swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--local-interface',
      '127.0.0.20',
      '--from',
      'x@y.test',
      '--to',
      'z@remote.test',
      '--quit-after',
      'RCPT',
    ]);
    await sink.waitForMessages(2, 60_000);
  });
  after(async () => {
    prometheus?.kill('SIGTERM');
    await postern?.cleanup();
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes every Postern process', async () => {
    await eventually(
      'all scrape targets up',
      async () => {
        const r = await query('up');
        const series = (r.data?.result ?? []) as { value: [number, string] }[];
        return series.length === postern.supervisor.children.size && series.every((s) => s.value[1] === '1');
      },
      60_000,
    );
  });

  for (const { title, expr } of queries) {
    it(`panel "${title}" ${OPERATOR_ONLY.test(expr) ? 'parses' : 'shows data'}: ${expr}`, async () => {
      const parsed = await query(expr);
      assert.equal(parsed.status, 'success', parsed.error);
      if (OPERATOR_ONLY.test(expr)) return;
      await eventually(
        `series for ${expr}`,
        async () => ((await query(expr)).data?.result.length ?? 0) > 0,
        90_000,
      );
    });
  }
});
