/**
 * A fresh install starts every pod at once, NATS included. The services must wait for NATS (retrying with
 * backoff and saying why), stay alive but not ready meanwhile, and become ready once NATS is there — never
 * exit and go through CrashLoopBackOff.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { freePort } from '../../../services/local/ports.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { eventually } from '../../helpers/postern.ts';
import { type ServiceProcess, startServiceProcess } from './process.ts';

describe('services started before NATS', () => {
  const procs: ServiceProcess[] = [];
  let nats: TestNats | undefined;
  after(async () => {
    for (const p of procs) p.kill();
    await nats?.cleanup();
  });

  it('ingress, queue and delivery wait for NATS, report not ready meanwhile, then become ready', async () => {
    const natsPort = await freePort('127.0.0.1');
    const env = { NATS_URL: `nats://127.0.0.1:${natsPort}`, POSTERN_HOSTNAME: 'mx.test' };
    const services = [
      [
        'services/ingress/main.ts',
        {
          POSTERN_INGRESS_LISTENERS: JSON.stringify([
            { name: 'smtp', host: '127.0.0.1', port: 0, mode: 'relay' },
          ]),
        },
      ],
      ['services/queue/main.ts', { POSTERN_ADMIN_PORT: '0' }],
      ['services/delivery/main.ts', { POSTERN_POOL: 'default' }],
    ] as const;
    for (const [entry, extra] of services) procs.push(await startServiceProcess(entry, { ...env, ...extra }));

    for (const p of procs) {
      // Each retry is logged with its reason, the process stays up, liveness answers and readiness does not.
      const retry = await p.waitForLine('a NATS retry line', (l) => l['step'] === 'connect to NATS');
      assert.equal(typeof retry['err'], 'string');
      assert.equal(await p.probe('/healthz'), 200);
      assert.equal(await p.probe('/readyz'), 503);
      assert.equal(p.child.exitCode, null, 'the service exited while waiting for NATS');
    }

    nats = await startTestNats(natsPort);
    for (const p of procs) {
      await p.waitForLine('the ready line', (l) => l['msg'] === 'ready');
      await eventually('/readyz 200', async () => (await p.probe('/readyz')) === 200);
    }
    assert.ok(procs.every((p) => p.child.exitCode === null));
  });

  it('a service waiting for NATS stops at once and cleanly on SIGTERM', async () => {
    const natsPort = await freePort('127.0.0.1');
    const p = await startServiceProcess('services/queue/main.ts', {
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      POSTERN_ADMIN_PORT: '0',
    });
    procs.push(p);
    await p.waitForLine('a NATS retry line', (l) => l['step'] === 'connect to NATS');
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });
});
