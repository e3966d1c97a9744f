/**
 * Abuse limits in one ingress (docs/ingress.md "Abuse limits"): real nats-server, swaks for what a real client
 * does, raw sockets for what only a hostile one does (dribbling bytes, junk commands). Limits and timeouts are
 * set small; the tests wait for the reply that ends the session, never for a time.
 */
import assert from 'node:assert/strict';
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
import { eventually } from '../../helpers/postern.ts';
import { type Harness, RawSmtp, serverReplies, startHarness, swaks } from './ingress-harness.ts';

const documents = {
  [domainKey('example.test')]: {
    source: 'mail/example.test',
    domain: 'example.test',
    inbound: { enabled: true },
  } satisfies DomainConfig,
  [policyKey('prod', 'apps')]: {
    source: 'prod/apps',
    networks: [],
    users: [{ name: 'app', hash: hashPassword('s3cret') }],
    requireTLS: false,
    limits: {},
    delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
  } satisfies PolicyConfig,
};

const listeners = [
  { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' as const },
  { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission' as const, insecureAuth: true },
];

async function say(c: RawSmtp, line: string): Promise<string> {
  c.write(`${line}\r\n`);
  return c.reply();
}

async function session(port: number, localAddress: string): Promise<RawSmtp> {
  const c = await RawSmtp.open(port, localAddress);
  assert.match(await c.reply(), /^220 /);
  return c;
}

/** Writes one byte at a time until `stop()`; bounded (at most `max` bytes). */
function dribble(c: RawSmtp, text: string, max = 600): { stop(): void } {
  let stopped = false;
  void (async () => {
    for (let i = 0; i < max && !stopped; i++) {
      c.write(text[i % text.length] ?? 'a');
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
  };
}

describe('abuse limits: connections, errors, junk and commands before AUTH', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners,
      documents,
      settings: {
        limits: {
          ...DEFAULT_LIMITS,
          maxConnections: 6,
          maxConnectionsPerIp: 2,
          hardErrorLimit: 3,
          junkCommandLimit: 5,
          unauthenticatedCommandLimit: 4,
        },
      },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('refuses a third connection from one address with 421 4.7.0, while another address gets in', async () => {
    const held = [await session(h.port('mx'), '127.0.0.20'), await session(h.port('mx'), '127.0.0.20')];
    try {
      const refused = await swaks(h.port('mx'), [
        '--local-interface',
        '127.0.0.20',
        '--quit-after',
        'CONNECT',
      ]);
      assert.ok(
        serverReplies(refused.output).some((l) =>
          /^421 4\.7\.0 Too many connections from your address/.test(l),
        ),
        refused.output,
      );
      const other = await swaks(h.port('mx'), ['--local-interface', '127.0.0.21', '--quit-after', 'EHLO']);
      assert.equal(other.code, 0, other.output);
    } finally {
      for (const c of held) c.close();
    }
  });

  it('refuses connections over the process total with 421 4.3.2, on every listener', async () => {
    // The previous test's sessions are released when smtp-server reports them closed.
    await eventually('earlier sessions released', async () => {
      const r = await swaks(h.port('mx'), ['--local-interface', '127.0.0.29', '--quit-after', 'EHLO']);
      return r.code === 0;
    });
    const held: RawSmtp[] = [];
    try {
      for (const ip of ['127.0.0.22', '127.0.0.23', '127.0.0.24'])
        for (let i = 0; i < 2; i++) held.push(await session(i ? h.port('submission') : h.port('mx'), ip));
      for (const port of [h.port('mx'), h.port('submission')]) {
        const r = await swaks(port, ['--local-interface', '127.0.0.25', '--quit-after', 'CONNECT']);
        assert.ok(
          serverReplies(r.output).some((l) => /^421 4\.3\.2 Too many connections, try again later/.test(l)),
          r.output,
        );
      }
    } finally {
      for (const c of held) c.close();
    }
    await eventually('a connection is admitted again', async () => {
      const r = await swaks(h.port('mx'), ['--local-interface', '127.0.0.25', '--quit-after', 'EHLO']);
      return r.code === 0;
    });
  });

  it('ends a session after the hard error limit with 421 4.7.0, and a delivered message resets the count', async () => {
    const c = await session(h.port('mx'), '127.0.0.26');
    await say(c, 'EHLO client.test');
    assert.match(await say(c, 'MAIL FROM:<someone@corp.example>'), /^250 /);
    assert.match(await say(c, 'RCPT TO:<x@foreign.example>'), /^554 5\.7\.1/);
    assert.match(await say(c, 'RCPT TO:<y@foreign.example>'), /^554 5\.7\.1/);
    // Two errors, then a message is queued: the count starts again.
    assert.match(await say(c, 'RCPT TO:<user@example.test>'), /^250 /);
    assert.match(await say(c, 'DATA'), /^354 /);
    assert.match(await say(c, 'Subject: hi\r\n\r\nhello\r\n.'), /^250 2\.0\.0 Ok: queued/);
    assert.ok(await h.nextEnvelope());
    assert.match(await say(c, 'MAIL FROM:<someone@corp.example>'), /^250 /);
    assert.match(await say(c, 'RCPT TO:<x@foreign.example>'), /^554 5\.7\.1/);
    assert.match(await say(c, 'RCPT TO:<y@foreign.example>'), /^554 5\.7\.1/);
    assert.match(await say(c, 'BOGUS'), /^500 /);
    assert.match(await c.reply(), /^421 4\.7\.0 Error: too many errors/);
    await assert.rejects(c.reply(2000), /connection closed/);
  });

  it('ends an unauthenticated session after the junk command limit with 421 4.7.0', async () => {
    const c = await session(h.port('mx'), '127.0.0.27');
    await say(c, 'EHLO client.test');
    for (let i = 0; i < 5; i++) assert.match(await say(c, i % 2 ? 'RSET' : 'NOOP'), /^250 /);
    assert.match(await say(c, 'NOOP'), /^421 4\.7\.0 Error: too many junk commands/);
    await assert.rejects(c.reply(2000), /connection closed/);
  });

  it('caps commands before AUTH on submission with 421 4.7.0, not after AUTH', async () => {
    const c = await session(h.port('submission'), '127.0.0.28');
    for (let i = 0; i < 4; i++) assert.match(await say(c, 'EHLO client.test'), /^250-/);
    assert.match(
      await say(c, 'EHLO client.test'),
      /^421 4\.7\.0 Error: too many commands without authentication/,
    );
    await assert.rejects(c.reply(2000), /connection closed/);

    const authed = await session(h.port('submission'), '127.0.0.28');
    await say(authed, 'EHLO client.test');
    const plain = Buffer.from('\0app\0s3cret').toString('base64');
    assert.match(await say(authed, `AUTH PLAIN ${plain}`), /^235 /);
    for (let i = 0; i < 6; i++) assert.match(await say(authed, 'EHLO client.test'), /^250-/);
    assert.match(await say(authed, 'QUIT'), /^221 /);
    authed.close();
  });
});

describe('abuse limits: slow clients', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners,
      documents,
      settings: {
        limits: { ...DEFAULT_LIMITS, idleTimeoutMs: 30_000, commandTimeoutMs: 1500, sessionTimeoutMs: 6000 },
      },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('ends a client dribbling a command line byte by byte with 421 4.4.2 (command deadline)', async () => {
    const c = await session(h.port('mx'), '127.0.0.30');
    const d = dribble(c, 'EHLO slowloris.example.');
    try {
      assert.match(await c.reply(30_000), /^421 4\.4\.2 Error: command line not completed in time/);
    } finally {
      d.stop();
      c.close();
    }
  });

  it('ends a client dribbling its DATA forever with 421 4.4.2 (session deadline); swaks is served', async () => {
    const c = await session(h.port('mx'), '127.0.0.31');
    await say(c, 'EHLO client.test');
    assert.match(await say(c, 'MAIL FROM:<someone@corp.example>'), /^250 /);
    assert.match(await say(c, 'RCPT TO:<user@example.test>'), /^250 /);
    assert.match(await say(c, 'DATA'), /^354 /);
    const d = dribble(c, 'Subject: slow\r\n\r\nline\r\n');
    try {
      assert.match(await c.reply(30_000), /^421 4\.4\.2 Error: session time limit exceeded/);
    } finally {
      d.stop();
      c.close();
    }
    const r = await swaks(h.port('mx'), ['--local-interface', '127.0.0.32', '--to', 'user@example.test']);
    assert.equal(r.code, 0, r.output);
  });
});

describe('abuse limits: idle timeout', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners,
      documents,
      settings: { limits: { ...DEFAULT_LIMITS, idleTimeoutMs: 1000 } },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('ends a session whose client goes silent with 421 4.4.2', async () => {
    const c = await session(h.port('mx'), '127.0.0.33');
    assert.match(await say(c, 'EHLO client.test'), /^250-/);
    assert.match(await c.reply(30_000), /^421 4\.4\.2 Error: timeout exceeded/);
    c.close();
  });
});
