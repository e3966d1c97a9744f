import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { domainKey } from '../../../services/common/config/resolved.ts';
import { type Harness, serverReplies, startHarness, swaks } from './ingress-harness.ts';

const send = (h: Harness) =>
  swaks(h.port('mx'), [
    '--local-interface',
    '127.0.0.2',
    '--from',
    'a@remote.example',
    '--to',
    'b@ours.example',
  ]);

describe('ingress when JetStream is unavailable', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
      documents: {
        [domainKey('ours.example')]: { source: 'm/o', domain: 'ours.example', inbound: { enabled: true } },
      },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('answers 451 4.3.0 (never 250) while nats-server is down, and accepts again once it is back', async () => {
    assert.match((await send(h)).output, /250 2\.0\.0 Ok: queued as/);
    assert.ok(await h.nextEnvelope());

    await h.nats.stop();
    for (let i = 0; i < 2; i++) {
      const r = await send(h);
      assert.doesNotMatch(r.output, /queued as/, r.output);
      assert.ok(serverReplies(r.output).includes('451 4.3.0 Temporary failure, try again later'), r.output);
    }

    h.nats = await h.nats.restart();
    let accepted: string | undefined;
    for (let i = 0; i < 60 && !accepted; i++) {
      const r = await send(h);
      accepted = /queued as ([0-9A-Z]{26})/.exec(r.output)?.[1];
      if (!accepted) {
        assert.match(r.output, /451 4\.3\.0/, 'until NATS is back the answer stays 451');
        await new Promise((res) => setTimeout(res, 250));
      }
    }
    assert.ok(accepted, 'mail is accepted again after nats-server restarts');
    // Envelopes answered 451 may still arrive (the client flushes buffered publishes on reconnect): duplicates
    // are allowed, loss is not. The accepted one must be there.
    const seen: string[] = [];
    for (let i = 0; i < 10 && !seen.includes(accepted); i++) {
      const env = await h.nextEnvelope(2000);
      if (env) seen.push(env.id);
    }
    assert.ok(seen.includes(accepted), `accepted ${accepted} is on SUBMIT (saw ${seen.join(', ')})`);
  });
});
