/**
 * Test helper: the real HAProxy (Debian `haproxy`) in the foreground with a generated configuration, in TCP mode
 * in front of loopback servers — a load balancer no one here wrote, sending PROXY protocol v1 (`send-proxy`) or
 * v2 (`send-proxy-v2`) headers.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Daemon, startDaemon } from './daemon.ts';
import { freePort } from './smtp-sink.ts';

export interface HaproxyRoute {
  /** Frontend address: 127.0.0.1, ::1, … */
  bind: string;
  /** Backend server line after `server s host:port` (e.g. `send-proxy-v2 source 127.0.0.10`). */
  server: string;
  target: { host: string; port: number };
  /** Extra frontend lines (e.g. `unique-id-format …`). */
  frontend?: string[];
  /** Extra backend lines (e.g. `option smtpchk EHLO lb.test`). */
  backend?: string[];
}

export interface Haproxy {
  /** Frontend port of each route, in the order given. */
  ports: number[];
  daemon: Daemon;
  close(): Promise<void>;
}

const hostPort = (host: string, port: number) =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

function config(routes: HaproxyRoute[], ports: number[]): string {
  const lines = [
    'global',
    '  maxconn 200',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
  ];
  routes.forEach((r, i) => {
    lines.push(
      `frontend fe${i}`,
      `  bind ${hostPort(r.bind, ports[i] ?? 0)}`,
      ...(r.frontend ?? []).map((l) => `  ${l}`),
      `  default_backend be${i}`,
      `backend be${i}`,
      ...(r.backend ?? []).map((l) => `  ${l}`),
      `  server s ${hostPort(r.target.host, r.target.port)} ${r.server}`,
    );
  });
  return `${lines.join('\n')}\n`;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts HAProxy and resolves once every frontend accepts connections (bounded: 10 s). */
export async function startHaproxy(routes: HaproxyRoute[]): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-haproxy-'));
  const ports: number[] = [];
  for (const r of routes) ports.push(await freePort(r.bind));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config(routes, ports));
  // -db: foreground, not daemonised, so the helper owns the process and stops it with a signal.
  const daemon = startDaemon('haproxy', ['-db', '-f', file], dir);
  const deadline = Date.now() + 10_000;
  for (const [i, r] of routes.entries()) {
    while (!(await accepts(r.bind, ports[i] ?? 0))) {
      if (daemon.exited() || Date.now() > deadline) {
        await daemon.close();
        throw new Error(`haproxy did not start: ${daemon.stderr()}`);
      }
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  return { ports, daemon, close: () => daemon.close() };
}
