/**
 * Issue #8 §2/§3 in local mode with three delivery processes: a site's limits hold for all of them together
 * (checked on what the sink saw: sessions open at once, messages per session, arrivals over time), and a throttle
 * reply suspends the site for everyone until the rule's duration is over, after which the waiting mail goes out
 * without having spent an attempt.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { startTestDns, type TestDns } from '../helpers/dns.ts';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { sendLoad } from '../helpers/smtp-client.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';

const CLI = new URL('../../bin/postern.ts', import.meta.url).pathname;

function postern(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/**
 * The most arrivals in any window of the log beyond what a token bucket allows:
 * max over i ≤ j of (j - i + 1) - (burst + rate × (t_j - t_i)).
 */
function excessOverBucket(arrivals: number[], perMinute: number, burst: number): number {
  const t = [...arrivals].sort((a, b) => a - b);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < t.length; i++)
    for (let j = i; j < t.length; j++)
      worst = Math.max(worst, j - i + 1 - (burst + (perMinute * (t[j]! - t[i]!)) / 60_000));
  return worst;
}

describe('site limits across three delivery processes (local mode)', () => {
  let sink: SmtpSink;
  let p: TestPostern;
  const limits = { maxConnections: 2, messagesPerConnection: 5, ratePerMinute: 300 };

  before(async () => {
    sink = await startSmtpSink({ host: '127.0.0.61' });
    p = await startPostern({
      deliveryProcesses: 3,
      config: `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: shaped }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery:
    smarthost: { host: 127.0.0.61, port: ${sink.port}, tls: none }
    destinations:
      - match: 127.0.0.61
        maxConnections: ${limits.maxConnections}
        messagesPerConnection: ${limits.messagesPerConnection}
        ratePerMinute: ${limits.ratePerMinute}
    retry: { schedule: [2s], maxLifetime: 1h }
`,
    });
  });
  after(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it('never more sessions than maxConnections, messages per session within the limit, arrivals within the bucket', async () => {
    const count = 40;
    const sent = await sendLoad({
      port: p.smtpPort,
      count,
      sessions: 4,
      from: 'me@sender.test',
      to: (i) => `rcpt${i}@far.test`,
    });
    assert.equal(sent.accepted.size, count);
    const got = await sink.waitForMessages(count, 120_000);
    assert.equal(new Set(got.map((m) => /X-Test-Id: (\S+)/.exec(m.raw.toString())?.[1])).size, count);

    assert.ok(sink.peakConcurrent <= limits.maxConnections, `peak sessions ${sink.peakConcurrent}`);
    const perConnection = new Map<number, number>();
    for (const m of got) perConnection.set(m.connection, (perConnection.get(m.connection) ?? 0) + 1);
    assert.ok(
      Math.max(...perConnection.values()) <= limits.messagesPerConnection,
      `messages per connection ${JSON.stringify([...perConnection])}`,
    );
    // Burst = one second's worth (5). Tolerance: 2 messages, for the time between a token's grant and the message's
    // arrival at the sink varying by a few milliseconds from one message to the next.
    const excess = excessOverBucket(
      got.map((m) => m.receivedAt),
      limits.ratePerMinute,
      Math.ceil(limits.ratePerMinute / 60),
    );
    assert.ok(excess <= 2, `arrivals exceed the token bucket by ${excess.toFixed(2)} messages`);

    const listed = await postern(['destinations', 'list', '--json', '--data-dir', p.dataDir]);
    assert.equal(listed.code, 0, listed.stderr);
    const site = (JSON.parse(listed.stdout) as { site: string; limits: Record<string, number> }[]).find(
      (s) => s.site === `smtp:127.0.0.61:${sink.port}`,
    );
    assert.deepEqual(site?.limits, limits);
  });
});

describe('a throttle reply suspends the site for every delivery process (local mode)', () => {
  let sink: SmtpSink;
  let p: TestPostern;
  let throttled = 0;
  const TSS04 =
    '4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes';
  const rulesFile = join(tmpdir(), `postern-rules-${process.pid}.yaml`);

  before(async () => {
    // The shipped Yahoo rule (response-rules.yaml) suspends for 30 minutes; the test runs it with 4 seconds.
    writeFileSync(
      rulesFile,
      `- id: yahoo-tss04
  # the shipped rule, with a test's duration
  match: '^4\\d\\d\\b.*\\[?TSS0[49]\\]?'
  action: suspend
  duration: 4s
  example: '421 ${TSS04}'
`,
    );
    sink = await startSmtpSink({
      host: '127.0.0.62',
      // The first MAIL FROM is answered with Yahoo's deferral; later ones are accepted.
      onMail: () => (throttled++ === 0 ? { code: 421, message: TSS04 } : 'accept'),
    });
    p = await startPostern({
      deliveryProcesses: 3,
      env: { POSTERN_RESPONSE_RULES_FILE: rulesFile },
      config: `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: throttled }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery:
    smarthost: { host: 127.0.0.62, port: ${sink.port}, tls: none }
    retry: { schedule: [1s], maxLifetime: 1h }
`,
    });
  });
  after(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it('suspends the site, attempts nothing until the time is up, then delivers the waiting mail on attempt 1', async () => {
    const nc = await connect({ servers: p.natsUrl });
    const events: { kind: string; site?: string; until?: string; attempt?: number; recipients?: string[] }[] =
      [];
    const sub = nc.subscribe('mail.event.>', {
      callback: (_e, m) => {
        events.push(m.json());
      },
    });
    try {
      const first = await sendLoad({
        port: p.smtpPort,
        count: 1,
        sessions: 1,
        from: 'a@sender.test',
        to: () => 'first@yahoo.test',
        idPrefix: 'first',
      });
      assert.equal(first.accepted.size, 1);
      const suspended = await eventually(
        'the site.suspended event',
        () => events.find((e) => e.kind === 'site.suspended'),
        30_000,
      );
      const until = Date.parse(suspended.until!);
      const mailFromsAtSuspension = throttled;

      const listed = await postern(['destinations', 'list', '--json', '--data-dir', p.dataDir]);
      const site = (JSON.parse(listed.stdout) as { site: string; status: string; lastReply?: string }[]).find(
        (s) => s.site === suspended.site,
      );
      assert.equal(site?.status, 'suspended', listed.stdout);

      // Mail sent while the site is suspended waits: nothing reaches the sink before `until`.
      const more = await sendLoad({
        port: p.smtpPort,
        count: 6,
        sessions: 2,
        from: 'a@sender.test',
        to: (i) => `later${i}@yahoo.test`,
        idPrefix: 'later',
      });
      assert.equal(more.accepted.size, 6);
      const got = await sink.waitForMessages(7, 60_000);
      for (const m of got)
        assert.ok(
          m.receivedAt >= until,
          `a message arrived ${until - m.receivedAt} ms before the suspension ended`,
        );
      assert.equal(throttled, mailFromsAtSuspension + 7, 'no MAIL FROM was sent to the suspended site');

      await eventually(
        'the site.resumed event',
        () => events.some((e) => e.kind === 'site.resumed' && e.site === suspended.site),
        30_000,
      );
      // The mail that waited kept its retry budget: delivered on its first attempt.
      const delivered = await eventually(
        'delivered events for the waiting mail',
        () => {
          const d = events.filter(
            (e) => e.kind === 'delivered' && e.recipients?.some((r) => r.startsWith('later')),
          );
          return d.length === 6 && d;
        },
        30_000,
      );
      assert.ok(
        delivered.every((e) => e.attempt === 1),
        JSON.stringify(delivered.map((e) => e.attempt)),
      );
    } finally {
      sub.unsubscribe();
      await nc.close();
    }
  });
});

describe('MX rollup: domains with the same MX hosts share one site (local mode, dnsmasq)', () => {
  let sink: SmtpSink;
  let dns: TestDns;
  let p: TestPostern;

  before(async () => {
    const port = await freePort('127.0.0.63');
    sink = await startSmtpSink({ host: '127.0.0.63', port });
    // Two recipient domains, one MX host set (listed in a different order): one site. A third domain has its own.
    dns = await startTestDns({
      mx: [
        { domain: 'one.test', exchange: 'mx1.rollup.test', priority: 10 },
        { domain: 'one.test', exchange: 'mx2.rollup.test', priority: 20 },
        { domain: 'two.test', exchange: 'mx2.rollup.test', priority: 10 },
        { domain: 'two.test', exchange: 'mx1.rollup.test', priority: 20 },
        { domain: 'three.test', exchange: 'mx.elsewhere.test', priority: 10 },
      ],
      a: [
        { name: 'mx1.rollup.test', address: '127.0.0.63' },
        { name: 'mx2.rollup.test', address: '127.0.0.63' },
        { name: 'mx.elsewhere.test', address: '127.0.0.63' },
      ],
    });
    p = await startPostern({
      deliveryProcesses: 3,
      env: { POSTERN_DNS_SERVERS: dns.server, POSTERN_MX_PORT: String(port) },
      config: `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: rollup }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery:
    destinations:
      - match: .rollup.test
        maxConnections: 1
    retry: { schedule: [2s], maxLifetime: 1h }
`,
    });
  });
  after(async () => {
    await p?.cleanup();
    await dns?.close();
    await sink?.close();
  });

  it('one connection at a time for both domains together, and destinations list shows one site serving both', async () => {
    const sent = await sendLoad({
      port: p.smtpPort,
      count: 24,
      sessions: 4,
      from: 'me@sender.test',
      to: (i) => `rcpt${i}@${i % 2 ? 'one.test' : 'two.test'}`,
    });
    assert.equal(sent.accepted.size, 24);
    await sink.waitForMessages(24, 60_000);
    assert.equal(sink.peakConcurrent, 1);

    const listed = await postern(['destinations', 'list', '--json', '--data-dir', p.dataDir]);
    const sites = JSON.parse(listed.stdout) as {
      site: string;
      domains: string[];
      limits: Record<string, number>;
    }[];
    const rollup = sites.find((s) => s.site === `mx:mx1.rollup.test,mx2.rollup.test:${sink.port}`);
    assert.deepEqual(rollup?.domains.sort(), ['one.test', 'two.test'], listed.stdout);
    assert.deepEqual(rollup?.limits, { maxConnections: 1 });

    // The CLI finds a site by a domain it serves, and an operator's suspension shows in the listing.
    const suspended = await postern([
      'destinations',
      'suspend',
      'two.test',
      '--for',
      '10m',
      '--data-dir',
      p.dataDir,
    ]);
    assert.equal(suspended.code, 0, suspended.stderr);
    const table = await postern(['destinations', 'list', '--data-dir', p.dataDir]);
    assert.match(
      table.stdout,
      /mx:mx1\.rollup\.test,mx2\.rollup\.test:\d+ {2}\[suspended until .* \(operator\)\]/,
    );
    assert.match(table.stdout, /domains: (one\.test, two\.test|two\.test, one\.test)/);
    const resumed = await postern(['destinations', 'resume', 'one.test', '--data-dir', p.dataDir]);
    assert.match(resumed.stdout, /^resumed mx:/);
  });
});
