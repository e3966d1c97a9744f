/**
 * NATS locked down by the chart: the nats.conf Helm renders (users, permissions, TLS) runs on a REAL nats-server on
 * loopback with a certificate from a test CA; every component connects with the credentials and settings its
 * rendered Deployment gets. Each one can do its job — the real ingress, queue and delivery processes carry a
 * message from swaks to a smarthost sink that requires AUTH, DKIM-signed, with the topology and config written by
 * the operator's user — and is refused what it must not do.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { ConfigKv } from '../../operator/controllers/config-kv.ts';
import type { DomainConfig, PolicyConfig } from '../../services/common/config/resolved.ts';
import { domainKey, policyKey } from '../../services/common/config/resolved.ts';
import { WEBHOOK_BUCKET, type WebhookConfig, webhookKey } from '../../services/common/config/webhook.ts';
import { connectNats, ensureTopology, SUBJECTS } from '../../services/common/nats.ts';
import { natsAuthFromEnv } from '../../services/common/nats-auth.ts';
import { SECRET_CONTEXT, secretBox } from '../../services/common/secrets.ts';
import { ensureDeliveryConsumer } from '../../services/delivery/consumer.ts';
import { findNatsServer, freePort } from '../../services/local/nats-server.ts';
import { findHelm, renderChart } from '../helpers/helm.ts';
import { eventually } from '../helpers/postern.ts';
import { containerEnv, renderedSecrets, runnableNatsConf } from '../helpers/rendered-nats.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';
import { createTestCa, type TestCa } from '../helpers/test-ca.ts';
import { type ServiceProcess, startServiceProcess } from '../integration/services/process.ts';

const FULL = 'mta-postern';

/** Resolves with the error a denied operation reports; fails the test when it is allowed. */
async function denied(what: string, op: () => Promise<unknown>): Promise<void> {
  const err = await op().then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err, `${what} must be denied`);
  assert.match(String(err.message ?? err), /permission/i, `${what}: ${err.message}`);
}

/** A subscription the server refuses: nats.js closes it with the server's permissions error. */
async function subscribeDenied(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  const closed = await Promise.race([sub.closed, new Promise((r) => setTimeout(r, 5000, 'still open'))]);
  assert.match(String(closed), /permission/i, `subscribe ${subject} must be denied (got ${String(closed)})`);
}

describe('NATS locked down by the chart (rendered nats.conf, real nats-server, TLS from a test CA)', () => {
  let dir: string;
  let ca: TestCa;
  let server: ChildProcess | undefined;
  let serverLog = '';
  let url: string;
  const envs = new Map<string, Record<string, string>>();
  const conns: NatsConnection[] = [];
  const procs: ServiceProcess[] = [];
  let sink: SmtpSink;
  let keyFile: string;
  let hooks: Server | undefined;

  /** Connects exactly as the rendered Deployment of `user` would (credentials, CA, inbox prefix). */
  const connectAs = async (user: string) => {
    const nc = await connectNats(url, `test-${user}`, natsAuthFromEnv(envs.get(user)));
    conns.push(nc);
    return nc;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-lockdown-'));
    ca = createTestCa();
    const objs = renderChart(findHelm(), {
      set: ['nats.replicas=1', 'nats.tls.secretName=nats-test-tls', 'hostname=mx.lockdown.test'],
    });
    const secrets = renderedSecrets(objs);
    const nats = runnableNatsConf(objs, FULL, dir, ca);
    const port = await freePort('127.0.0.1');
    const monitor = await freePort('127.0.0.1');
    // Command-line flags override the file: loopback only, free ports.
    server = spawn(
      findNatsServer(),
      ['-c', nats.conf, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor)],
      {
        env: { ...process.env, ...nats.env },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    server.stderr!.on('data', (d: Buffer) => {
      serverLog += d.toString();
    });
    await eventually(
      'nats-server ready',
      () => serverLog.includes('Server is ready') || server!.exitCode !== null,
    );
    assert.equal(server.exitCode, null, `nats-server refused the rendered configuration:\n${serverLog}`);
    url = `nats://127.0.0.1:${port}`;

    keyFile = join(dir, 'secrets.key');
    writeFileSync(join(dir, 'secrets.key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    const deployments = objs.filter((o): o is V1Deployment => o.kind === 'Deployment');
    for (const [user, name] of [
      ['operator', `${FULL}-operator`],
      ['ingress', `${FULL}-ingress`],
      ['queue', `${FULL}-queue`],
      ['delivery-default', `${FULL}-delivery-default`],
      ['webhooks', `${FULL}-webhooks`],
    ] as const) {
      const d = deployments.find((x) => x.metadata?.name === name);
      assert.ok(d, `Deployment ${name}`);
      const env = containerEnv(d.spec!.template.spec!.containers[0]!, secrets);
      assert.equal(env['NATS_USER'], user);
      assert.equal(env['NATS_TLS_CA_FILE'], '/etc/postern/nats-ca/ca.crt');
      // The NATS settings only: listeners, metrics and admin ports stay on this test's loopback choices.
      const natsEnv = Object.fromEntries(
        Object.entries(env).filter(([k]) => /^(NATS_|POSTERN_NATS_)/.test(k)),
      );
      envs.set(user, { ...natsEnv, NATS_URL: url, NATS_TLS_CA_FILE: nats.caFile });
    }
    sink = await startSmtpSink({ host: '127.0.0.1', auth: { user: 'relay', pass: 'smarthost-pw' } });
  });

  after(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await sink?.close();
    hooks?.close();
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await new Promise((r) => server!.once('exit', r));
    }
    ca?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the operator sets up the topology and the config; ingress, queue and delivery carry mail with AUTH and DKIM', async () => {
    const op = await connectAs('operator');
    await ensureTopology(op, 1, 'manage');
    await ensureDeliveryConsumer(
      op,
      { pool: 'default', ackWaitMs: 30_000, concurrency: 8 },
      { createOnly: true },
    );
    assert.equal(
      (await (await jetstreamManager(op)).consumers.info('OUTBOUND', 'delivery-default')).name,
      'delivery-default',
    );

    const box = secretBox([Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64')]);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const pub = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const domain: DomainConfig = {
      source: 'mail/origin',
      domain: 'origin.test',
      inbound: null,
      dkim: { selector: 'sel1', privateKey: box.seal(pem, SECRET_CONTEXT.dkimKey('origin.test', 'sel1')) },
    };
    const policy: PolicyConfig = {
      source: 'mail/loopback',
      networks: ['127.0.0.0/8'],
      users: [],
      requireTLS: false,
      // Counted per client across replicas on CLIENT_RATE: the ingress user's counter subjects are exercised too.
      limits: { messagesPerMinute: 100 },
      delivery: {
        pool: 'default',
        smarthost: {
          host: sink.host,
          port: sink.port,
          tls: 'none',
          auth: {
            user: 'relay',
            pass: box.seal('smarthost-pw', SECRET_CONTEXT.smarthostPassword(sink.host, sink.port, 'relay')),
          },
        },
        destinations: [],
        retry: { scheduleMs: [1000], maxLifetimeMs: 600_000 },
        tls: 'opportunistic',
      },
    };
    const kv = await ConfigKv.open(op);
    await kv.putIfChanged(domainKey('origin.test'), domain);
    await kv.putIfChanged(policyKey('mail', 'loopback'), policy);
    // A Webhook for delivered mail: the dispatcher under its own user reads it and POSTs the event.
    const posts: string[] = [];
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        posts.push(body);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hooks!.listen(0, '127.0.0.1', r));
    const hook: WebhookConfig = {
      source: 'mail/hook',
      url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/`,
      events: ['delivered'],
      secret: 'hmac-key',
      timeoutMs: 5000,
      maxLifetimeMs: 600_000,
      initialDelayMs: 500,
      maxDelayMs: 5000,
    };
    await (await ConfigKv.open(op, WEBHOOK_BUCKET, 1)).putIfChanged(webhookKey('mail', 'hook'), hook);

    const listeners = JSON.stringify([
      { name: 'smtp', host: '127.0.0.1', port: 0, mode: 'relay' },
      { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission', insecureAuth: true },
    ]);
    const local = { POSTERN_ALLOW_LOOPBACK_MX: 'true', POSTERN_HOSTNAME: 'mx.lockdown.test' };
    const ingress = await startServiceProcess('services/ingress/main.ts', {
      ...envs.get('ingress')!,
      ...local,
      POSTERN_INGRESS_LISTENERS: listeners,
      // Attach nothing (body-wire.ts): the 40 KB message then takes the body store under the lock-down too.
      POSTERN_ATTACH_MAX: '0',
    });
    procs.push(ingress);
    procs.push(
      await startServiceProcess('services/queue/main.ts', {
        ...envs.get('queue')!,
        ...local,
        POSTERN_ADMIN_HOST: '127.0.0.1',
        POSTERN_ADMIN_PORT: '0',
      }),
    );
    procs.push(
      await startServiceProcess('services/delivery/main.ts', {
        ...envs.get('delivery-default')!,
        ...local,
        POSTERN_SECRETS_KEY_FILE: keyFile,
      }),
    );
    procs.push(
      await startServiceProcess('services/webhooks/main.ts', { ...envs.get('webhooks')!, ...local }),
    );
    for (const p of procs) await p.waitForLine('ready', (l) => l['msg'] === 'ready');
    const bound = (await ingress.waitForLine('listener address', (l) => l['msg'] === 'ready'))[
      'listeners'
    ] as {
      name: string;
      address: string;
    }[];
    const portOf = (name: string) =>
      bound
        .find((l) => l.name === name)
        ?.address.split(':')
        .pop();
    const address = portOf('smtp');
    assert.ok(address && portOf('submission'), `ingress listener addresses in ${JSON.stringify(bound)}`);

    const r = await swaks([
      '--server',
      `127.0.0.1:${address}`,
      '--from',
      'me@origin.test',
      '--to',
      'you@far.test',
    ]);
    assert.equal(r.code, 0, r.transcript);
    const [msg] = await sink.waitForMessages(1);
    assert.equal(msg?.authUser, 'relay');
    const verified = await dkimVerify(msg!.raw, {
      resolver: async (name: string, rr: string) => {
        if (name === 'sel1._domainkey.origin.test' && rr === 'TXT') return [[`v=DKIM1; k=rsa; p=${pub}`]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));

    // A body over 16 KiB goes through the BODIES stream (ingress stores, delivery loads, the queue purges).
    const big = await swaks([
      '--server',
      `127.0.0.1:${address}`,
      '--from',
      'me@origin.test',
      '--to',
      'big@far.test',
      '--body',
      'x'.repeat(40_000),
    ]);
    assert.equal(big.code, 0, big.transcript);
    await sink.waitForMessages(2);
    // A failed AUTH is counted on AUTH_FAILURES (the lockout across replicas).
    const failed = await swaks([
      '--server',
      `127.0.0.1:${portOf('submission')}`,
      '--auth',
      'PLAIN',
      '--auth-user',
      'nobody',
      '--auth-password',
      'wrong',
      '--quit-after',
      'AUTH',
    ]);
    assert.ok(
      failed.replies.some((l) => /^535/.test(l)),
      failed.transcript,
    );
    const webhooks = procs[3]!;
    await eventually('the delivered event POSTed by the webhook dispatcher', () =>
      posts.some((p) => /delivered/.test(p)),
    ).catch((err) => {
      throw new Error(
        `${err}\n${serverLog
          .split('\n')
          .filter((l) => /Violation/.test(l))
          .join('\n')}\n${JSON.stringify(webhooks.lines.slice(-6))}`,
      );
    });
    // Each path really ran: stream info is readable by every user.
    const jsm = await jetstreamManager(op);
    const used = async (stream: string) => (await jsm.streams.info(stream)).state.last_seq > 0;
    await eventually('the failed AUTH counted on AUTH_FAILURES', () => used('AUTH_FAILURES'), 10_000).catch(
      (err) => {
        throw new Error(
          `${err}\n${serverLog
            .split('\n')
            .filter((l) => /Violation/.test(l))
            .join('\n')}\n${JSON.stringify(ingress.lines.slice(-8))}`,
        );
      },
    );
    assert.ok(await used('CLIENT_RATE'), 'the client rate counted on CLIENT_RATE');
    assert.ok(await used('BODIES'), 'the big body went through BODIES');
    assert.doesNotMatch(serverLog, /Violation/, 'no component was refused anything it does');
  });

  it('ingress may only submit (envelopes, or direct jobs): no schedules, results, config writes, bodies or other inboxes', async () => {
    const nc = await connectAs('ingress');
    const js = jetstream(nc);
    // Direct jobs on mail.out.> are allowed (routing at receipt, services/common/submit.ts); schedules are not.
    await denied('schedule a job', () => js.publish(SUBJECTS.scheduled('default', 'x.0'), '{}'));
    await denied('publish a result', () => js.publish(SUBJECTS.result('default'), '{}'));
    await denied('write the config bucket', async () =>
      (await new Kvm(nc).open('config')).put('domain.evil.test', '{}'),
    );
    await denied('read a body', () => nc.request('$JS.API.STREAM.MSG.GET.BODIES', '{"seq":1}'));
    await denied('read a body directly', () => nc.request('$JS.API.DIRECT.GET.BODIES.mail.body.m1'));
    await denied('delete a stream', () => nc.request('$JS.API.STREAM.DELETE.SUBMIT'));
    await denied('create a consumer on OUTBOUND', () =>
      nc.request('$JS.API.CONSUMER.CREATE.OUTBOUND.spy', '{}'),
    );
    await denied('read the webhook HMAC keys', () =>
      nc.request('$JS.API.DIRECT.GET.KV_webhooks.$KV.webhooks.mail.hook'),
    );
    await subscribeDenied(nc, 'mail.>');
    await subscribeDenied(nc, '_INBOX_delivery-default.>');
  });

  it("delivery cannot write the config, create jobs or take another pool's work", async () => {
    const nc = await connectAs('delivery-default');
    const js = jetstream(nc);
    await denied('write the config bucket', async () =>
      (await new Kvm(nc).open('config')).put('policy.x.y', '{}'),
    );
    await denied('publish a delivery job', () => js.publish(SUBJECTS.outbound('default', 'far.test'), '{}'));
    await denied('publish a submission as if from ingress', () =>
      js.publish(SUBJECTS.clientRate(1, 'x'), ''),
    );
    await denied('results of another pool', () => js.publish(SUBJECTS.result('bulk'), '{}'));
    await denied("another pool's jobs", () =>
      nc.request('$JS.API.CONSUMER.MSG.NEXT.OUTBOUND.delivery-bulk', '{}'),
    );
    await denied('change a stream', () => nc.request('$JS.API.STREAM.UPDATE.OUTBOUND', '{}'));
    await subscribeDenied(nc, '_INBOX_queue.>');
  });

  it('the queue cannot write the config or change streams; the operator and the webhook dispatcher send no mail', async () => {
    const q = await connectAs('queue');
    await denied('queue writes config', async () =>
      (await new Kvm(q).open('config')).put('domain.evil.test', '{}'),
    );
    await denied('queue updates a stream', () => q.request('$JS.API.STREAM.UPDATE.SUBMIT', '{}'));
    const op = await connectAs('operator');
    const js = jetstream(op);
    await denied('operator submits mail', () => js.publish(SUBJECTS.submit(0), '{}'));
    await denied('operator publishes a job', () =>
      js.publish(SUBJECTS.outbound('default', 'far.test'), '{}'),
    );
    await denied('operator reads a body', () => op.request('$JS.API.STREAM.MSG.GET.BODIES', '{"seq":1}'));
    await denied('operator deletes a stream', () => op.request('$JS.API.STREAM.DELETE.SUBMIT'));
    const wh = await connectAs('webhooks');
    await denied('webhooks submits mail', () => jetstream(wh).publish(SUBJECTS.submit(0), '{}'));
    await denied('webhooks writes a Webhook', async () =>
      (await new Kvm(wh).open('webhooks')).put('x.y', '{}'),
    );
    await denied('webhooks reads a body', () => wh.request('$JS.API.STREAM.MSG.GET.BODIES', '{"seq":1}'));
  });

  it('without the right password, or without TLS, nobody gets in', async () => {
    const ingress = envs.get('ingress')!;
    const tls = { caFile: ingress['NATS_TLS_CA_FILE']! };
    await assert.rejects(connect({ servers: url, tls, reconnect: false }), /Authorization/i);
    await assert.rejects(
      connect({ servers: url, tls, user: 'ingress', pass: 'guess', reconnect: false }),
      /Authorization/i,
    );
    await assert.rejects(
      connect({
        servers: url,
        tls: null,
        user: 'ingress',
        pass: ingress['NATS_PASSWORD']!,
        reconnect: false,
      }),
    );
    // The server's certificate must chain to the CA the client trusts.
    const other = createTestCa('Another CA');
    try {
      await assert.rejects(
        connect({
          servers: url,
          tls: { caFile: other.caFile },
          user: 'ingress',
          pass: ingress['NATS_PASSWORD']!,
          reconnect: false,
        }),
      );
    } finally {
      other.close();
    }
  });

  it('the server logs refusals, so the clean log of the mail run means no component was refused anything', () => {
    assert.match(serverLog, /Publish Violation - Subject "mail\.out\.default\.far_2etest"/);
    assert.match(serverLog, /Subscription Violation - Subject "mail\.>"/);
  });

  it('by default Helm makes a CA and a certificate for the client Service and every server, kept in a Secret', () => {
    const objs = renderChart(findHelm(), { namespace: 'mail' });
    const tls = renderedSecrets(objs)[`${FULL}-nats-tls`];
    assert.ok(tls?.['tls.crt'] && tls['tls.key'] && tls['ca.crt'], 'tls.crt, tls.key and ca.crt');
    writeFileSync(join(dir, 'gen-ca.crt'), tls['ca.crt']!);
    writeFileSync(join(dir, 'gen-tls.crt'), tls['tls.crt']!);
    const verify = spawnSync(
      'openssl',
      ['verify', '-CAfile', join(dir, 'gen-ca.crt'), join(dir, 'gen-tls.crt')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    const text = spawnSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'gen-tls.crt')], {
      encoding: 'utf8',
    }).stdout;
    for (const name of [`${FULL}-nats.mail.svc`, `*.${FULL}-nats-headless.mail.svc`])
      assert.ok(text.includes(`DNS:${name}`), name);
    // Routes use it as a client certificate too (mutual TLS between servers).
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  });

  it('with cert-manager the chart asks for the certificate instead of making one; with a Secret it uses that', () => {
    const helm = findHelm();
    const cm = renderChart(helm, {
      set: ['nats.tls.certManager.enabled=true', 'nats.tls.certManager.issuerRef.name=internal-ca'],
    });
    const cert = cm.find((o) => o.kind === 'Certificate') as
      | (KubernetesObject & { spec: { secretName: string; usages: string[]; issuerRef: { name: string } } })
      | undefined;
    assert.equal(cert?.spec.secretName, `${FULL}-nats-tls`);
    assert.equal(cert?.spec.issuerRef.name, 'internal-ca');
    assert.ok(cert?.spec.usages.includes('client auth'), 'routes use it as a client certificate');
    assert.equal(renderedSecrets(cm)[`${FULL}-nats-tls`], undefined, 'no Helm-made certificate');
    const own = renderChart(helm, { set: ['nats.tls.secretName=my-nats-tls'] });
    assert.equal(renderedSecrets(own)[`${FULL}-nats-tls`], undefined);
    assert.equal(
      own.find((o) => o.kind === 'Certificate'),
      undefined,
    );
    assert.match(JSON.stringify(own), /"secretName":"my-nats-tls"/);
  });
});
