/**
 * Test helper for the multi-replica ingress tests: a real ingress process (`node services/ingress/main.ts`) with
 * an MX (relay) and a submission listener on loopback, started against a given nats-server.
 */
import { join } from 'node:path';
import { type ServiceProcess, startServiceProcess } from '../services/process.ts';

const ROOT = join(import.meta.dirname, '../../..');

export interface IngressProcess {
  proc: ServiceProcess;
  mx: number;
  submission: number;
}

export async function startIngressProcess(
  natsUrl: string,
  env: Record<string, string> = {},
): Promise<IngressProcess> {
  const proc = await startServiceProcess(join(ROOT, 'services/ingress/main.ts'), {
    NATS_URL: natsUrl,
    POSTERN_HOSTNAME: 'mx.test.postern',
    // The tests read envelopes from SUBMIT; routing at receipt has its own tests (direct-routing.test.ts).
    POSTERN_DIRECT_ROUTING: '0',
    POSTERN_INGRESS_LISTENERS: JSON.stringify([
      { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
      { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission', insecureAuth: true },
    ]),
    ...env,
  });
  const ready = await proc.waitForLine('ingress ready', (l) => l['msg'] === 'ready');
  const bound = ready['listeners'] as { name: string; address: string }[];
  const port = (name: string) =>
    Number(
      bound
        .find((l) => l.name === name)
        ?.address.split(':')
        .pop(),
    );
  return { proc, mx: port('mx'), submission: port('submission') };
}

/** SIGTERM to each process that started, waiting for it to exit. */
export async function stopIngressProcesses(...all: (IngressProcess | undefined)[]): Promise<void> {
  for (const i of all) {
    if (!i) continue;
    i.proc.child.kill('SIGTERM');
    await i.proc.exited;
  }
}
