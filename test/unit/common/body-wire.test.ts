import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MsgHdrs } from '@nats-io/transport-node';
import fc from 'fast-check';
import {
  ENVELOPE_HEADER,
  envelopeWire,
  readEnvelopeMessage,
  readJobMessage,
  readResultMessage,
  resultWire,
} from '../../../services/common/body-wire.ts';
import type { DeliveryResult, Envelope } from '../../../services/common/types.ts';
import { decodeState, encodeState, type MessageState } from '../../../services/queue/state.ts';

const envelope = (body: Envelope['body']): Envelope => ({
  id: 'm1',
  from: 'alice@corp.test',
  to: ['bob@example.net'],
  receivedAt: '2026-11-27T10:00:00.000Z',
  client: { address: '127.0.0.1', helo: 'client.test', tls: false },
  size: 5,
  body,
});

/** What a NATS message looks like to a reader (payload and headers as published). */
function received(w: { payload: Uint8Array | string; headers?: MsgHdrs }) {
  const data = typeof w.payload === 'string' ? Buffer.from(w.payload) : w.payload;
  return {
    data,
    string: () => Buffer.from(data).toString('utf8'),
    ...(w.headers ? { headers: w.headers } : {}),
  };
}

describe('body-wire: small bodies travel as raw bytes beside their contract', () => {
  it('an attached body is the payload, byte for byte, and the envelope is in a header (no base64)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const raw = Buffer.from(bytes);
        const w = envelopeWire(envelope({ attached: raw.length }), raw);
        assert.deepEqual(Buffer.from(w.payload as Uint8Array), raw);
        assert.ok(w.headers?.get(ENVELOPE_HEADER));
        const back = readEnvelopeMessage(received(w));
        assert.deepEqual(back.attached, raw);
        assert.deepEqual(back.value.body, { attached: raw.length });
      }),
    );
  });

  it('a body in the store (or inline, as older releases wrote it) leaves the contract as the payload', () => {
    for (const body of [{ stored: 'm1', size: 20000 }, { inline: 'SGVsbG8=' }]) {
      const w = envelopeWire(envelope(body));
      assert.equal(w.headers, undefined);
      const back = readEnvelopeMessage(received(w));
      assert.deepEqual(back.value.body, body);
      assert.equal(back.attached, undefined);
    }
  });

  it('a result without body needs no bytes', () => {
    const result: DeliveryResult = {
      job: {
        jobId: 'm1.0',
        messageId: 'm1',
        attempt: 1,
        from: 'a@b.test',
        recipients: ['c@d.test'],
        route: { kind: 'mx', domain: 'd.test', tls: 'opportunistic' },
        pool: 'default',
        receivedAt: '2026-11-27T10:00:00.000Z',
        expiresAt: '2026-11-28T10:00:00.000Z',
        retry: { scheduleMs: [1000], maxLifetimeMs: 86_400_000 },
        kind: 'mail',
      },
      outcomes: [],
      attemptedAt: '2026-11-27T10:00:01.000Z',
      durationMs: 3,
    };
    assert.deepEqual(readResultMessage(received(resultWire(result))).value.body, undefined);
  });

  it('refuses a size mismatch, missing bytes, or an attached body claimed without a header, naming why', () => {
    const raw = Buffer.from('hello');
    assert.throws(() => envelopeWire(envelope({ attached: 4 }), raw), /4 attached bytes, 5 given/);
    assert.throws(() => envelopeWire(envelope({ attached: 5 })), /5 attached bytes, none given/);
    const w = envelopeWire(envelope({ attached: 5 }), raw);
    assert.throws(
      () => readEnvelopeMessage({ ...received(w), data: Buffer.from('hell') }),
      /attached body is 4 bytes, the contract says otherwise/,
    );
    const asJson = received({ payload: JSON.stringify({ ...envelope({ attached: 5 }), v: 1 }) });
    assert.throws(() => readEnvelopeMessage(asJson), /an attached body, but the contract is the payload/);
    assert.throws(() => readJobMessage(received({ payload: '{"jobId":1}' })), /invalid DeliveryJob/);
  });
});

describe('queue state entries keep an attached body raw after the JSON', () => {
  const state = (body: MessageState['body']): MessageState => ({
    id: 'm1',
    from: 'a@b.test',
    receivedAt: '2026-11-27T10:00:00.000Z',
    kind: 'mail',
    body,
    jobs: {},
    final: { 'x@y.test': { result: 'delivered', response: '250 ok \u0000 control', at: 'now' } },
  });

  it('round-trips any bytes (NULs included) and any JSON text (escaped control characters included)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        const raw = Buffer.from(bytes);
        const s = state({ attached: raw.length });
        const back = decodeState(encodeState(s, raw));
        assert.deepEqual(back.state, s);
        assert.deepEqual(back.attached, raw);
      }),
    );
  });

  it('reads an entry written before attached bodies (JSON alone, inline base64) as it was', () => {
    const s = state({ inline: 'SGVsbG8=' });
    const back = decodeState(Buffer.from(JSON.stringify(s)));
    assert.deepEqual(back, { state: s });
    assert.deepEqual(Buffer.from(encodeState(s, undefined)).toString(), JSON.stringify(s));
  });

  it('refuses to write an attached state without its bytes', () => {
    assert.throws(() => encodeState(state({ attached: 3 }), undefined), /3 attached body bytes, none given/);
  });
});
