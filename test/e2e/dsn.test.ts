/**
 * RFC 3461 delivery status notifications end to end: Postern in local mode (real nats-server, ingress, queue and
 * delivery processes), nodemailer's SMTP client sending NOTIFY/RET/ENVID/ORCPT (swaks 20201014 has no DSN
 * options), SMTP sinks as next hops (one advertising DSN, one not) and as the sender's mailbox.
 * "No notice" is asserted on the events stream: a job attempt's DSNs (and their `dsn` events) are published
 * before the attempt's outcome events, so once the outcome event is seen, a missing `dsn` event stays missing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { MailEvent } from '../../services/common/types.ts';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { sendWithDsn } from '../helpers/smtp-client.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';

describe('delivery status notifications (RFC 3461) through Postern', () => {
  let postern: TestPostern;
  let nc: NatsConnection;
  const events: MailEvent[] = [];
  const sinks: Record<'dsnHop' | 'plainHop' | 'slowHop' | 'senderBox' | 'inboundStore', SmtpSink> =
    {} as never;
  let lateDeferrals = 0;

  before(async () => {
    sinks.dsnHop = await startSmtpSink({ host: '127.0.0.21', dsn: true });
    sinks.plainHop = await startSmtpSink({
      host: '127.0.0.22',
      onRcpt: (rcpt) =>
        rcpt.startsWith('reject')
          ? { code: 550, message: `5.1.1 <${rcpt}>: Recipient address rejected: User unknown` }
          : 'accept',
    });
    sinks.slowHop = await startSmtpSink({
      host: '127.0.0.23',
      // Three deferrals, then accepted: the attempts span the (short) delayWarning.
      onRcpt: () => (lateDeferrals++ < 3 ? { code: 451, message: '4.2.0 greylisted, try again' } : 'accept'),
    });
    sinks.senderBox = await startSmtpSink({ host: '127.0.0.24' });
    sinks.inboundStore = await startSmtpSink({ host: '127.0.0.25', lmtp: true });
    const smarthost = (s: SmtpSink) => `{ host: ${s.host}, port: ${s.port}, tls: none }`;
    postern = await startPostern({
      config: `
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: sender }
spec:
  domain: sender.test
  inbound:
    enabled: true
    deliverTo: { host: ${sinks.senderBox.host}, port: ${sinks.senderBox.port}, protocol: smtp, tls: none }
---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: inbound }
spec:
  domain: inbound.test
  inbound:
    enabled: true
    deliverTo: { host: ${sinks.inboundStore.host}, port: ${sinks.inboundStore.port}, protocol: lmtp, tls: none }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: a-dsn-hop }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery: { smarthost: ${smarthost(sinks.dsnHop)} }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: b-plain-hop }
spec:
  clients: { networks: [127.0.0.2/32] }
  delivery: { smarthost: ${smarthost(sinks.plainHop)} }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: c-slow-hop }
spec:
  clients: { networks: [127.0.0.3/32] }
  delivery:
    smarthost: ${smarthost(sinks.slowHop)}
    retry: { schedule: [1s], maxLifetime: 1h, delayWarning: 1s }
`,
    });
    nc = await connect({ servers: postern.natsUrl });
    nc.subscribe('mail.event.>', {
      callback: (_e, m) => {
        events.push(m.json<MailEvent>());
      },
    });
    await nc.flush();
  });

  after(async () => {
    await nc?.close();
    await postern?.cleanup();
    await Promise.all(Object.values(sinks).map((s) => s.close()));
  });

  /** Sends one message and returns its queue id (from "250 … queued as <id>"). */
  async function send(
    localAddress: string,
    to: string,
    dsn: Parameters<typeof sendWithDsn>[0]['dsn'],
    from = 'alice@sender.test',
  ): Promise<string> {
    const reply = await sendWithDsn({
      port: postern.smtpPort,
      localAddress,
      from,
      to: [to],
      raw: `From: <alice@sender.test>\r\nTo: <${to}>\r\nSubject: dsn test\r\n\r\nthe body text of ${to}\r\n`,
      dsn,
    });
    const id = /queued as (\S+)/.exec(reply)?.[1];
    assert.ok(id, reply);
    return id;
  }
  const eventOf = (kind: MailEvent['kind'], id: string) =>
    eventually(`a ${kind} event for ${id}`, () => events.find((e) => e.kind === kind && e.messageId === id));
  const dsnEvents = (id: string) => events.filter((e) => e.kind === 'dsn' && e.messageId === id);
  /** The DSNs at the sender's mailbox that name this ENVID. */
  const noticesFor = (envid: string) =>
    sinks.senderBox.messages.filter((m) => m.raw.toString().includes(`Original-Envelope-Id: ${envid}\r\n`));

  it('NOTIFY=SUCCESS through a next hop without DSN: parameters dropped, Postern reports "relayed" with ENVID and ORCPT', async () => {
    await send('127.0.0.2', 'bob@far.test', {
      ret: 'HDRS',
      envid: 'env-relayed',
      notify: 'SUCCESS',
      orcpt: 'rfc822;Bob@far.test',
    });
    const hop = await eventually('the message at the hop', () =>
      sinks.plainHop.messages.find((m) => m.to.includes('bob@far.test')),
    );
    assert.deepEqual(hop.mailParams, {}, 'no RET/ENVID to a hop without DSN');
    assert.deepEqual(hop.rcptParams, {}, 'no NOTIFY/ORCPT to a hop without DSN');
    const [notice] = await eventually(
      'the success notice',
      () => noticesFor('env-relayed').length > 0 && noticesFor('env-relayed'),
    );
    const text = notice!.raw.toString();
    assert.equal(notice!.from, '', 'DSNs come from the null sender');
    assert.deepEqual(notice!.to, ['alice@sender.test']);
    assert.match(text, /Subject: Successful Mail Delivery Report/);
    assert.match(
      text,
      /\r\nOriginal-Recipient: rfc822; Bob@far\.test\r\nFinal-Recipient: rfc822; bob@far\.test\r\nAction: relayed\r\nStatus: 2\.\d\.\d\r\n/,
    );
    assert.match(text, /Content-Type: text\/rfc822-headers/);
  });

  it('NOTIFY=SUCCESS through a next hop that advertises DSN: parameters passed on, no notice from Postern', async () => {
    const id = await send('127.0.0.1', 'carol@far.test', {
      ret: 'FULL',
      envid: 'env passed=on',
      notify: 'SUCCESS,FAILURE',
      orcpt: 'rfc822;Carol+1@far.test',
    });
    const hop = await eventually('the message at the DSN hop', () =>
      sinks.dsnHop.messages.find((m) => m.to.includes('carol@far.test')),
    );
    assert.deepEqual(hop.mailParams, { RET: 'FULL', ENVID: 'env passed=on' });
    assert.deepEqual(hop.rcptParams, {
      'carol@far.test': { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;Carol+1@far.test' },
    });
    await eventOf('delivered', id);
    assert.deepEqual(dsnEvents(id), [], 'the next hop reports success, not Postern');
  });

  it('NOTIFY=SUCCESS into the mailbox store (LMTP): Postern reports "delivered"', async () => {
    await send('127.0.0.1', 'dave@inbound.test', { envid: 'env-delivered', notify: 'SUCCESS' });
    await sinks.inboundStore.waitForMessages(1, 60_000);
    const [notice] = await eventually(
      'the delivered notice',
      () => noticesFor('env-delivered').length > 0 && noticesFor('env-delivered'),
    );
    assert.match(
      notice!.raw.toString(),
      /Final-Recipient: rfc822; dave@inbound\.test\r\nAction: delivered\r\n/,
    );
  });

  it('NOTIFY=DELAY,SUCCESS with a short delayWarning: exactly one warning, then the success notice', async () => {
    const id = await send('127.0.0.3', 'erin@far.test', { envid: 'env-delay', notify: 'DELAY,SUCCESS' });
    await eventOf('delivered', id);
    const actions = dsnEvents(id).map((e) => e.action);
    assert.deepEqual(
      actions.filter((a) => a === 'delayed'),
      ['delayed'],
      `one warning (dsn events: ${actions})`,
    );
    assert.deepEqual(
      actions.filter((a) => a !== 'delayed'),
      ['relayed'],
    );
    const notices = await eventually(
      'both notices at the sender',
      () => noticesFor('env-delay').length >= 2 && noticesFor('env-delay'),
    );
    const warning = notices.map((m) => m.raw.toString()).find((t) => /Action: delayed/.test(t));
    assert.ok(warning, 'a delay warning arrived');
    assert.match(warning, /Subject: Delayed Mail \(still being retried\)/);
    assert.match(warning, /Status: 4\.2\.0\r\n/);
    assert.match(warning, /Will-Retry-Until: /);
    assert.match(warning, /greylisted, try again/);
    assert.equal(lateDeferrals, 4, 'three deferrals, then the accepted attempt');
  });

  it('NOTIFY=NEVER: a failed recipient bounces without a DSN', async () => {
    const id = await send('127.0.0.2', 'reject-never@far.test', { notify: 'NEVER', envid: 'env-never' });
    await eventOf('bounced', id);
    assert.deepEqual(dsnEvents(id), []);
  });

  it('never sends a DSN for a message with a null sender', async () => {
    const id = await send('127.0.0.2', 'reject-null@far.test', { notify: 'SUCCESS,FAILURE' }, '');
    await eventOf('bounced', id);
    assert.deepEqual(dsnEvents(id), []);
  });

  it('RET=FULL returns the whole message in the failure DSN, RET=HDRS only its headers', async () => {
    await send('127.0.0.2', 'reject-full@far.test', { ret: 'FULL', envid: 'env-full', notify: 'FAILURE' });
    await send('127.0.0.2', 'reject-hdrs@far.test', { ret: 'HDRS', envid: 'env-hdrs', notify: 'FAILURE' });
    const [full] = await eventually(
      'the RET=FULL bounce',
      () => noticesFor('env-full').length > 0 && noticesFor('env-full'),
    );
    const [hdrs] = await eventually(
      'the RET=HDRS bounce',
      () => noticesFor('env-hdrs').length > 0 && noticesFor('env-hdrs'),
    );
    const fullText = full!.raw.toString();
    const hdrsText = hdrs!.raw.toString();
    assert.match(fullText, /Action: failed\r\nStatus: 5\.1\.1/);
    assert.match(fullText, /Content-Type: message\/rfc822/);
    assert.match(fullText, /the body text of reject-full@far\.test/);
    assert.match(hdrsText, /Content-Type: text\/rfc822-headers/);
    assert.match(hdrsText, /Subject: dsn test/);
    assert.doesNotMatch(hdrsText, /the body text of/);
  });
});
