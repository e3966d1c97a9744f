/**
 * PROXY protocol behind the real HAProxy (docs/ingress.md "PROXY protocol"): HAProxy on loopback sends v1
 * (`send-proxy`) and v2 (`send-proxy-v2`, also with CRC32C and unique-id TLVs) from 127.0.0.10, the only trusted
 * balancer network, to an ingress listener that requires the header. swaks connects through HAProxy from chosen
 * loopback addresses, so relay rules, the Received header and the envelope must see those addresses, not
 * HAProxy's. Raw sockets play the hostile peers: forged headers from outside, garbage, truncation, silence.
 */

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../../services/common/config/password.ts';
import {
  DEFAULT_RETRY,
  type DomainConfig,
  domainKey,
  type PolicyConfig,
  policyKey,
} from '../../../services/common/config/resolved.ts';
import { DEFAULT_LIMITS } from '../../../services/ingress/settings.ts';
import { bodyText, type SeenEnvelope } from '../../helpers/bodies.ts';
import { type Haproxy, startHaproxy } from '../../helpers/haproxy.ts';
import { eventually } from '../../helpers/postern.ts';
import { swaks as swaksAt } from '../../helpers/swaks.ts';
import {
  type Harness,
  RawSmtp,
  selfSignedCert,
  serverReplies,
  startHarness,
  swaks,
} from './ingress-harness.ts';

const BALANCER = '127.0.0.10';
const RELAY_CLIENT = '127.0.0.20';
const STRANGER = '127.0.0.30';

const documents = {
  [domainKey('example.test')]: {
    source: 'mail/example.test',
    domain: 'example.test',
    inbound: { enabled: true },
  } satisfies DomainConfig,
  // The relay network holds the real client (and ::1 for the IPv6 route), never the balancer.
  [policyKey('prod', 'apps')]: {
    source: 'prod/apps',
    networks: [],
    users: [{ name: 'app', hash: hashPassword('s3cret') }],
    requireTLS: true,
    limits: {},
    delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
  } satisfies PolicyConfig,
  [policyKey('prod', 'office')]: {
    source: 'prod/office',
    networks: [`${RELAY_CLIENT}/32`, '::1/128'],
    users: [],
    requireTLS: false,
    limits: {},
    delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
  } satisfies PolicyConfig,
};

function bodyOf(env: SeenEnvelope | undefined): string {
  assert.ok(env && 'attached' in env.body, 'an attached body');
  return bodyText(env);
}

/** Resolves once the peer has closed; `data` is everything it sent before (must be nothing: no banner). */
function closedWithout(port: number, localAddress: string, send: Buffer[], end = false): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const s = connect({ port, host: '127.0.0.1', localAddress }, () => {
      for (const b of send) s.write(b);
      if (end) s.end();
    });
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
    });
    let error = '';
    // A reset is one way of being closed; 'close' follows it.
    s.on('error', (err) => {
      error = err.message;
    });
    const deadline = setTimeout(() => {
      s.destroy();
      reject(
        new Error(
          `connection from ${localAddress} not closed by the ingress; got ${JSON.stringify(data)} ${error}`,
        ),
      );
    }, 15_000);
    s.on('close', () => {
      clearTimeout(deadline);
      resolve(data);
    });
  });
}

describe('PROXY protocol v1 and v2 behind a real HAProxy', () => {
  let h: Harness;
  let lb: Haproxy;
  let viaV1: number;
  let viaV2: number;
  let viaV2Tlvs: number;
  let viaV2Ipv6: number;
  let viaSmtps: number;

  before(async () => {
    h = await startHarness({
      listeners: [
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay', proxyProtocol: true },
        { name: 'smtps', host: '127.0.0.1', port: 0, mode: 'smtps', proxyProtocol: true },
      ],
      documents,
      settings: {
        tls: selfSignedCert(),
        // Small, to show the per-address connection count keys on the real client, not the balancer.
        limits: { ...DEFAULT_LIMITS, maxConnectionsPerIp: 2 },
        proxyProtocol: { trustedNetworks: [`${BALANCER}/32`], headerTimeoutMs: 1000 },
      },
    });
    const target = { host: '127.0.0.1', port: h.port('mx') };
    lb = await startHaproxy([
      { bind: '127.0.0.1', target, server: `send-proxy source ${BALANCER}` },
      // HAProxy's SMTP health check sends a v2 LOCAL header (check-send-proxy) and expects a 220 + 250.
      {
        bind: '127.0.0.1',
        target,
        server: `send-proxy-v2 source ${BALANCER} check check-send-proxy inter 500`,
        backend: ['option smtpchk EHLO lb.test'],
      },
      {
        bind: '127.0.0.1',
        target,
        server: `send-proxy-v2 proxy-v2-options crc32c,unique-id source ${BALANCER}`,
        frontend: ['unique-id-format lb-%{+X}o%ci-%cp'],
      },
      { bind: '::1', target, server: `send-proxy-v2 source ${BALANCER}` },
      // TCP passthrough: the TLS handshake of port 465 follows the header, end to end with the client.
      {
        bind: '127.0.0.1',
        target: { host: '127.0.0.1', port: h.port('smtps') },
        server: `send-proxy source ${BALANCER}`,
      },
    ]);
    [viaV1 = 0, viaV2 = 0, viaV2Tlvs = 0, viaV2Ipv6 = 0, viaSmtps = 0] = lb.ports;
  });
  after(async () => {
    await lb?.close();
    await h?.stop();
  });

  for (const [version, port] of [
    ['v1', () => viaV1],
    ['v2', () => viaV2],
    ['v2 with CRC32C and unique-id TLVs', () => viaV2Tlvs],
  ] as const) {
    it(`${version}: a client in the relay network may relay, and the Received header names it`, async () => {
      const r = await swaks(port(), [
        '--local-interface',
        RELAY_CLIENT,
        '--from',
        'ops@corp.example',
        '--to',
        'partner@elsewhere.example',
      ]);
      assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
      const env = await h.nextEnvelope();
      assert.equal(env?.client.address, RELAY_CLIENT);
      assert.equal(env?.policy, 'prod.office');
      assert.match(bodyOf(env), /^Received: from client\.test \(\[127\.0\.0\.20\]\)/);
    });

    it(`${version}: a client outside the relay network gets 554 5.7.1, though the balancer is the same`, async () => {
      const r = await swaks(port(), [
        '--local-interface',
        STRANGER,
        '--from',
        'ops@corp.example',
        '--to',
        'partner@elsewhere.example',
      ]);
      assert.ok(serverReplies(r.output).includes('554 5.7.1 Relay access denied'), r.output);
      assert.doesNotMatch(r.output, /queued as/);
    });

    it(`${version}: mail for an inbound domain from outside is accepted with the real address`, async () => {
      const r = await swaks(port(), ['--local-interface', STRANGER, '--to', 'user@example.test']);
      assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
      const env = await h.nextEnvelope();
      assert.equal(env?.client.address, STRANGER);
      // Sender authentication checks the real client too (iprev, SPF), above the Received header that names it.
      assert.match(
        bodyOf(env),
        /^Authentication-Results: mx\.test\.postern;\r\n iprev=fail policy\.iprev=127\.0\.0\.30;[\s\S]*?\r\nReceived: from client\.test \(\[127\.0\.0\.30\]\)/,
      );
    });
  }

  it('v2 over IPv6 (TCP6): the client ::1 is in the relay network and may relay', async () => {
    const r = await swaksAt([
      '--server',
      `[::1]:${viaV2Ipv6}`,
      '--local-interface',
      '::1',
      '--helo',
      'client6.test',
      '--from',
      'ops@corp.example',
      '--to',
      'partner@elsewhere.example',
    ]);
    assert.match(r.transcript, /250 2\.0\.0 Ok: queued as/, r.transcript);
    const env = await h.nextEnvelope();
    assert.equal(env?.client.address, '::1');
    assert.match(bodyOf(env), /^Received: from client6\.test \(\[::1\]\)/);
  });

  it('per-address connection limits count the real client: a third session of one client gets 421, another gets in', async () => {
    const held = [await RawSmtp.open(viaV2, RELAY_CLIENT), await RawSmtp.open(viaV2, RELAY_CLIENT)];
    try {
      for (const c of held) assert.match(await c.reply(), /^220 /);
      const third = await RawSmtp.open(viaV2, RELAY_CLIENT);
      assert.match(await third.reply(), /^421 4\.7\.0 Too many connections from your address/);
      third.close();
      const other = await RawSmtp.open(viaV1, STRANGER);
      assert.match(await other.reply(), /^220 /);
      other.close();
    } finally {
      for (const c of held) c.close();
    }
  });

  it('smtps (implicit TLS) after the header: AUTH, TLS and the real address all reach the envelope', async () => {
    const r = await swaks(viaSmtps, [
      '--local-interface',
      STRANGER,
      '--tls-on-connect',
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      's3cret',
      '--from',
      'noreply@apps.example',
      '--to',
      'customer@elsewhere.example',
    ]);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    const env = await h.nextEnvelope();
    assert.deepEqual(env?.client, { address: STRANGER, helo: 'client.test', user: 'app', tls: true });
    assert.match(bodyOf(env), /^Received: from client\.test \(\[127\.0\.0\.30\]\)[^;]*with ESMTPSA/);
  });

  it("honours HAProxy's v2 LOCAL health checks (a session with the balancer's own address)", async () => {
    await eventually('a v2 LOCAL header', async () =>
      /postern_proxy_headers_total\{[^}]*version="v2",command="local"\} [1-9]/.test(
        await h.registry.metrics(),
      ),
    );
  });

  it('counts v1 and v2 headers of relayed clients', async () => {
    const text = await h.registry.metrics();
    assert.match(text, /postern_proxy_headers_total\{listener="mx",version="v1",command="proxy"\} [1-9]/);
    assert.match(text, /postern_proxy_headers_total\{listener="mx",version="v2",command="proxy"\} [1-9]/);
  });

  it('a forged PROXY header sent directly from an untrusted address is closed without a banner', async () => {
    for (const header of [
      Buffer.from(`PROXY TCP4 ${RELAY_CLIENT} 127.0.0.1 40000 25\r\nEHLO x\r\n`),
      // v2 TCP4 from 127.0.0.20:40000 to 127.0.0.1:25
      Buffer.from('0d0a0d0a000d0a515549540a2111000c7f0000147f0000019c400019', 'hex'),
    ]) {
      assert.equal(await closedWithout(h.port('mx'), STRANGER, [header]), '');
      assert.equal(await closedWithout(h.port('mx'), RELAY_CLIENT, [header]), '');
    }
    assert.match(
      await h.registry.metrics(),
      /postern_proxy_refusals_total\{listener="mx",reason="untrusted-peer"\} [4-9]/,
    );
  });

  it('from the balancer itself: garbage, truncated, oversized and silent headers are closed without a banner', async () => {
    const cases: [string, Buffer[], boolean][] = [
      ['SMTP instead of a header', [Buffer.from('EHLO direct.test\r\n')], false],
      ['binary garbage', [Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0xff, 0x00])], false],
      ['v1 without CRLF for 200 bytes', [Buffer.from(`PROXY TCP4 ${'9'.repeat(200)}`)], false],
      ['v1 with a hostname', [Buffer.from('PROXY TCP4 evil.example 127.0.0.1 1 25\r\n')], false],
      [
        'v2 truncated, then the client closes',
        [Buffer.from('0d0a0d0a000d0a515549540a2111000c7f00', 'hex')],
        true,
      ],
      ['v2 UDP', [Buffer.from('0d0a0d0a000d0a515549540a2112000c7f0000147f0000019c400019', 'hex')], false],
      ['v2 claiming 60000 bytes', [Buffer.from('0d0a0d0a000d0a515549540a2111ea60', 'hex')], false],
      ['half a v1 header, then silence (header timeout)', [Buffer.from('PROXY TCP4 127.0')], false],
      ['nothing at all (header timeout)', [], false],
    ];
    for (const [name, send, end] of cases) {
      assert.equal(await closedWithout(h.port('mx'), BALANCER, send, end), '', name);
    }
    const text = await h.registry.metrics();
    for (const reason of ['malformed', 'oversized', 'unsupported', 'timeout', 'closed']) {
      assert.match(
        text,
        new RegExp(`postern_proxy_refusals_total\\{listener="mx",reason="${reason}"\\} [1-9]`),
        reason,
      );
    }
    // The ingress is still serving.
    const r = await swaks(viaV1, ['--local-interface', STRANGER, '--to', 'user@example.test']);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    await h.nextEnvelope();
  });
});
