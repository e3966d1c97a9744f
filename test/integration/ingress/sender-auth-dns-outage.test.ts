/**
 * Sender authentication when DNS does not answer: a real ingress and nats-server, a real DNS server (dnsmasq) whose
 * answers for the sender's domain never come, swaks as the client. The message must be accepted (never refused
 * or lost because of someone else's DNS) once the verification bound passes, and say that nothing was verified.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DomainConfig, domainKey } from '../../../services/common/config/resolved.ts';
import { bodyText } from '../../helpers/bodies.ts';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { type Harness, startHarness, swaks } from './ingress-harness.ts';

const enforcing: DomainConfig = {
  source: 'mail/ours.example',
  domain: 'ours.example',
  inbound: {
    enabled: true,
    authentication: { dmarc: 'enforce', quarantine: 'hold', spfFail: 'reject', trustedArcSealers: [] },
  },
};

describe('sender authentication with a DNS server that does not answer', () => {
  let dns: TestDns;
  let h: Harness;
  before(async () => {
    // dnsmasq forwards broken.test to an upstream that never answers: every look-up there times out.
    dns = await startTestDns({ servfail: ['broken.test'] });
    h = await startHarness({
      listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
      // 1 s: shorter than one unanswered query (5 s), so the bound always ends the verification.
      settings: { dnsServers: [dns.server], senderAuthTimeoutMs: 1000 },
      documents: { [domainKey('ours.example')]: enforcing },
    });
  });
  after(async () => {
    await h?.stop();
    await dns?.close();
  });

  it('accepts the message after the bound, even under dmarc: enforce and spfFail: reject, with "none"', async () => {
    const r = await swaks(h.port('mx'), [
      '--local-interface',
      '127.0.0.2',
      '--from',
      'news@broken.test',
      '--to',
      'bob@ours.example',
      '--header',
      'From: news@broken.test',
    ]);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    const env = await h.nextEnvelope();
    assert.ok(env && 'attached' in env.body);
    const body = bodyText(env, 'latin1');
    assert.match(body, /^Authentication-Results: mx\.test\.postern; none\r\nReceived: /);
    const metrics = await h.registry.getSingleMetricAsString('postern_sender_auth_total');
    assert.match(metrics, /postern_sender_auth_total\{action="unverified",dmarc="none"\} 1/);
  });
});
