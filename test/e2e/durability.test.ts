/**
 * Never lose accepted mail: kill -9 each service in the middle of a bounded run and let it restart (as its
 * supervisor or Kubernetes would); every message that got 250 must arrive. Stop nats-server: ingress answers 4xx,
 * never 250; start it again: mail flows again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNatsServer } from '../../services/local/nats-server.ts';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';
import { sendLoad, testIdOf } from '../helpers/smtp-client.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

const COUNT = Number(process.env['POSTERN_DURABILITY_MESSAGES'] ?? 2000);

describe('durability of accepted mail', () => {
  let postern: TestPostern;
  let sink: SmtpSink;
  let restartedNats: { stop(): Promise<void> } | undefined;

  before(async () => {
    sink = await startSmtpSink({ host: '127.0.0.9' });
    postern = await startPostern({
      config: smarthostRelayConfig({
        host: '127.0.0.9',
        port: sink.port,
        networks: '127.0.0.0/8',
        retry: '{ schedule: [1s] }',
      }),
    });
  });
  after(async () => {
    await postern?.cleanup();
    await restartedNats?.stop();
    await sink?.close();
  });

  const kill9 = (name: string) => {
    const child = postern.supervisor.children.get(name);
    assert.ok(child, `${name} is running`);
    child.process.kill('SIGKILL');
  };

  it(`delivers every accepted message of ${COUNT} while ingress, queue and delivery are each killed -9`, async () => {
    const faults = new Map([
      [Math.floor(COUNT * 0.2), 'ingress-0'],
      [Math.floor(COUNT * 0.45), 'queue'],
      [Math.floor(COUNT * 0.7), 'delivery-0'],
    ]);
    const result = await sendLoad({
      port: postern.smtpPort,
      count: COUNT,
      sessions: 8,
      from: 'load@sender.test',
      to: (i) => `rcpt${i}@remote.test`,
      onAccepted: (n) => {
        const victim = faults.get(n);
        if (victim) {
          faults.delete(n);
          kill9(victim);
        }
      },
    });
    assert.ok(result.accepted.size > COUNT * 0.9, `most messages accepted (${result.accepted.size})`);
    const arrived = await eventually(
      'every accepted message at the sink',
      () => {
        const ids = new Map<string, number>();
        for (const m of sink.messages) {
          const id = testIdOf(m.raw);
          if (id) ids.set(id, (ids.get(id) ?? 0) + 1);
        }
        return [...result.accepted].every((id) => ids.has(id)) && ids;
      },
      300_000,
    );
    const duplicates = [...arrived.values()].filter((n) => n > 1).length;
    console.log(
      `durability: accepted ${result.accepted.size}/${COUNT}, arrived ${arrived.size}, duplicates ${duplicates}, client retries ${result.tempFailures}`,
    );
  });

  it('answers 4xx, never 250, while nats-server is down, and resumes when it is back', async () => {
    const { port, storeDir } = postern.nats;
    await postern.nats.stop();
    const down = await swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--from',
      'a@sender.test',
      '--to',
      'outage@remote.test',
    ]);
    assert.notEqual(down.code, 0, down.transcript);
    assert.ok(!down.replies.some((l) => /^250 .*queued/i.test(l)), 'no 250 for the message');
    assert.ok(
      down.replies.some((l) => /^4\d\d 4\.\d\.\d/.test(l)),
      down.transcript,
    );

    restartedNats = await startNatsServer({ storeDir, port });
    const up = await eventually(
      'a 250 after nats-server is back',
      async () => {
        const r = await swaks([
          '--server',
          `127.0.0.1:${postern.smtpPort}`,
          '--from',
          'a@sender.test',
          '--to',
          'back@remote.test',
        ]);
        return r.code === 0 && r;
      },
      120_000,
    );
    assert.equal(up.code, 0);
    await eventually(
      'the message after the outage at the sink',
      () => sink.messages.some((m) => m.to.includes('back@remote.test')),
      120_000,
    );
  });
});
