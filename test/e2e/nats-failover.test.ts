/**
 * Local mode survives nats-server dying: kill -9 the single nats-server in the middle of a bounded run, or one node
 * of a 3-node JetStream cluster (`postern local --nats-cluster 3`); local mode restarts it on the same port and
 * store, the services reconnect, and every message that got 250 arrives. Duplicates are reported, not asserted
 * (at-least-once delivery across a crash).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';
import { sendLoad, testIdOf } from '../helpers/smtp-client.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';

const COUNT = Number(process.env['POSTERN_NATS_FAILOVER_MESSAGES'] ?? 600);

async function runWithNatsKilled(
  sink: SmtpSink,
  postern: TestPostern,
  idPrefix: string,
  victim: string,
): Promise<void> {
  const node = postern.natsSupervisor.nodes.find((n) => n.name === victim);
  assert.ok(node, `${victim} is running`);
  const killedPid = node.process.pid;
  let killed = false;
  const result = await sendLoad({
    port: postern.smtpPort,
    count: COUNT,
    sessions: 6,
    from: 'load@sender.test',
    to: (i) => `rcpt${i}@remote.test`,
    idPrefix,
    tries: 100,
    onAccepted: (n) => {
      if (!killed && n === Math.floor(COUNT * 0.3)) {
        killed = true;
        node.process.kill('SIGKILL');
      }
    },
  });
  assert.ok(killed, 'nats-server was killed mid-run');
  await eventually(
    'the killed node is back',
    () => node.process.pid !== killedPid && node.process.exitCode === null,
  );
  assert.ok(result.accepted.size > 0, 'messages were accepted');
  const arrived = await eventually(
    'every accepted message at the sink',
    () => {
      const ids = new Map<string, number>();
      for (const m of sink.messages) {
        const id = testIdOf(m.raw);
        if (id?.startsWith(`${idPrefix}-`)) ids.set(id, (ids.get(id) ?? 0) + 1);
      }
      return [...result.accepted].every((id) => ids.has(id)) && ids;
    },
    300_000,
  );
  const duplicates = [...arrived.values()].filter((n) => n > 1).length;
  console.log(
    `${idPrefix}: accepted ${result.accepted.size}/${COUNT}, not accepted ${result.notAccepted.size}, arrived ${arrived.size}, duplicates ${duplicates}, client retries ${result.tempFailures}`,
  );
}

describe('local mode when nats-server dies', () => {
  let sink: SmtpSink;
  const running: TestPostern[] = [];
  after(async () => {
    for (const p of running) await p.cleanup();
    await sink?.close();
  });

  const start = async (natsCluster?: number) => {
    sink ??= await startSmtpSink({ host: '127.0.0.9' });
    const p = await startPostern({
      config: smarthostRelayConfig({
        host: '127.0.0.9',
        port: sink.port,
        networks: '127.0.0.0/8',
        retry: '{ schedule: [1s] }',
      }),
      ...(natsCluster ? { natsCluster } : {}),
    });
    running.push(p);
    return p;
  };

  it('restarts a kill -9ed nats-server on the same port and store; every accepted message arrives', async () => {
    const p = await start();
    await runWithNatsKilled(sink, p, 'single', 'nats-server');
    await p.cleanup();
    running.splice(running.indexOf(p), 1);
  });

  it('with --nats-cluster 3 (R3 streams), one node killed -9 mid-run loses no accepted message', async () => {
    const p = await start(3);
    assert.equal(p.natsSupervisor.nodes.length, 3);
    await runWithNatsKilled(sink, p, 'cluster', 'nats-0');
  });
});
