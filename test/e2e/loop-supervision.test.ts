/**
 * Long-lived loops heal themselves: break them on purpose with a real nats-server — delete the queue's and the
 * delivery pool's consumers, drop the config watchers, kill -9 nats-server — and each service's /readyz says 503
 * while a loop is broken, the restart is counted in postern_loop_restarts_total{loop}, /readyz comes back to 200,
 * configuration changes apply again and mail flows again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CONSUMERS, STREAMS } from '../../services/common/nats.ts';
import { resolveConfigText, writeConfig } from '../../services/local/config-file.ts';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';
import { sendLoad, testIdOf } from '../helpers/smtp-client.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

describe('supervised loops', () => {
  let postern: TestPostern;
  let sink: SmtpSink;
  let nc: NatsConnection;
  let batch = 0;

  before(async () => {
    sink = await startSmtpSink({ host: '127.0.0.9' });
    postern = await startPostern({
      config: smarthostRelayConfig({ host: '127.0.0.9', port: sink.port, networks: '127.0.0.0/8' }),
    });
    nc = await connect({ servers: postern.natsUrl.split(','), maxReconnectAttempts: -1 });
  });
  after(async () => {
    await nc?.close();
    await postern?.cleanup();
    await sink?.close();
  });

  const metricsOf = (service: string) => {
    const child = postern.supervisor.children.get(service);
    assert.ok(child, `${service} runs`);
    return `http://${String(child.ready['metrics'])}`;
  };
  const readyz = async (service: string) => {
    try {
      return (await fetch(`${metricsOf(service)}/readyz`)).status;
    } catch {
      return 0;
    }
  };
  const restarts = async (service: string, loop: string) => {
    const text = await (await fetch(`${metricsOf(service)}/metrics`)).text();
    const line = new RegExp(`^postern_loop_restarts_total\\{[^}]*loop="${loop}"[^}]*\\} (\\d+)`, 'm').exec(
      text,
    );
    return Number(line?.[1] ?? Number.NaN);
  };

  /** Records every /readyz answer of `service` from now until `stop()`: the 503 is seen, not guessed. */
  const watchReadiness = (service: string) => {
    const seen: number[] = [];
    let stopped = false;
    const polling = (async () => {
      for (let i = 0; i < 20_000 && !stopped; i++) {
        seen.push(await readyz(service));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return {
      seen,
      async stop() {
        stopped = true;
        await polling;
      },
    };
  };

  const mailFlows = async () => {
    const prefix = `batch${++batch}`;
    const result = await sendLoad({
      port: postern.smtpPort,
      count: 20,
      sessions: 2,
      from: 'load@sender.test',
      to: (i) => `rcpt${i}@remote.test`,
      idPrefix: prefix,
    });
    assert.equal(result.accepted.size, 20, 'every message accepted');
    await eventually(`the ${prefix} messages at the sink`, () => {
      const ids = new Set(sink.messages.map((m) => testIdOf(m.raw)));
      return [...result.accepted].every((id) => ids.has(id));
    });
  };

  const breakAndHeal = async (service: string, loop: string, breakIt: () => Promise<void>) => {
    const before = await restarts(service, loop);
    assert.ok(Number.isFinite(before), `${service} exports postern_loop_restarts_total{loop="${loop}"}`);
    const readiness = watchReadiness(service);
    await breakIt();
    await eventually(`${loop} restarted`, async () => (await restarts(service, loop)) > before);
    await eventually(`${service} 503 while ${loop} is broken, then 200`, () => {
      const broken = readiness.seen.indexOf(503);
      return broken >= 0 && readiness.seen.indexOf(200, broken) > broken;
    });
    await readiness.stop();
    assert.ok(
      postern.logs.some((l) => l.startsWith(`${service}:`) && l.includes(`"loop":"${loop}"`)),
      'the failure is logged with the loop name',
    );
  };

  it('a deleted queue consumer is re-created: /readyz 503, then 200; the restart is counted; mail flows', async () => {
    await mailFlows();
    const jsm = await jetstreamManager(nc);
    await breakAndHeal('queue', CONSUMERS.queueSubmit, async () => {
      await jsm.consumers.delete(STREAMS.submit, CONSUMERS.queueSubmit);
    });
    await mailFlows();
  });

  it('a deleted delivery pool consumer is re-created and delivery resumes', async () => {
    const jsm = await jetstreamManager(nc);
    await breakAndHeal('delivery-0', 'delivery-default', async () => {
      await jsm.consumers.delete(STREAMS.outbound, CONSUMERS.delivery('default'));
    });
    await mailFlows();
  });

  /** Writes a MailDomain listing its users and waits until the ingress refuses an unknown one (550 5.1.1). */
  const configApplies = async (domain: string) => {
    const doc = resolveConfigText(`
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: ${domain.replace('.', '-')} }
spec:
  domain: ${domain}
  inbound:
    enabled: true
    recipients: [alice]
    deliverTo: { host: 127.0.0.9, port: ${sink.port}, protocol: smtp }
`);
    // Our own client reconnects after a NATS restart too; until it has, the write fails and is tried again.
    await eventually('the MailDomain written', () =>
      writeConfig(nc, doc, false).then(
        () => true,
        () => false,
      ),
    );
    await eventually(`the ${domain} MailDomain applied by the ingress`, async () => {
      const r = await swaks([
        '--server',
        `127.0.0.1:${postern.smtpPort}`,
        '--from',
        'a@sender.test',
        '--to',
        `nobody@${domain}`,
        '--quit-after',
        'RCPT',
      ]);
      return r.replies.some((l) => /^550 5\.1\.1/.test(l));
    });
  };

  it('dropped config watchers are noticed as stalled, restarted and counted; the next config change applies', async () => {
    const jsm = await jetstreamManager(nc);
    const before = await restarts('ingress-0', 'config-watch');
    for await (const c of jsm.consumers.list('KV_config')) await jsm.consumers.delete('KV_config', c.name);
    await configApplies('late.test');
    await eventually(
      'the stalled config watch counted',
      async () => (await restarts('ingress-0', 'config-watch')) > before,
    );
    assert.ok(postern.logs.some((l) => l.includes('"loop":"config-watch"') && l.includes('stalled')));
  });

  it('after nats-server is killed -9 every service is ready again, config changes apply and mail flows', async () => {
    const node = postern.natsSupervisor.nodes[0]!;
    const pid = node.process.pid;
    node.process.kill('SIGKILL');
    await eventually(
      'nats-server restarted',
      () => node.process.pid !== pid && node.process.exitCode === null,
    );
    for (const service of postern.supervisor.children.keys())
      await eventually(
        `${service} ready after the NATS restart`,
        async () => (await readyz(service)) === 200,
      );
    await configApplies('later.test');
    await mailFlows();
  });
});
