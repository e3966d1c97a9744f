/**
 * dnsmasq on loopback answering the bench's MX records: healthy.bench → mx.healthy.bench (127.0.0.1),
 * dead.bench → mx.dead.bench (127.0.0.2). Authoritative for nothing else and forwards nothing (--no-resolv).
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

export interface DnsServer {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/** `extra`: more MX domains, each with its own MX host on the given address (the soak's bouncing destination). */
export async function startDns(
  port: number,
  healthyIp: string,
  deadIp: string,
  extra: { domain: string; ip: string }[] = [],
): Promise<DnsServer> {
  const child = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--local=/#/', // every other name: NXDOMAIN at once, never forwarded
      '--bind-interfaces',
      '--listen-address=127.0.0.1',
      '--interface=lo',
      `--port=${port}`,
      '--pid-file=',
      '--user=root',
      '--mx-host=healthy.bench,mx.healthy.bench,10',
      `--host-record=mx.healthy.bench,${healthyIp}`,
      '--mx-host=dead.bench,mx.dead.bench,10',
      `--host-record=mx.dead.bench,${deadIp}`,
      // The shaping run's throttled site: the healthy sink under another MX name (another site).
      '--mx-host=throttled.bench,mx.throttled.bench,10',
      `--host-record=mx.throttled.bench,${healthyIp}`,
      ...extra.flatMap((e) => [
        `--mx-host=${e.domain},mx.${e.domain},10`,
        `--host-record=mx.${e.domain},${e.ip}`,
      ]),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // dnsmasq also listens on TCP: ready once a TCP connect succeeds (bounded: 100 tries).
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited: ${stderr}`);
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: '127.0.0.1',
    port,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}
