/**
 * e2e helper: the whole of Postern in local mode (real nats-server + ingress, queue and delivery processes),
 * started from a config text exactly like `postern local --config FILE`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalHandle, startLocal } from '../../services/local/local-mode.ts';
import { startTestDns } from './dns.ts';

export interface TestPostern extends LocalHandle {
  dataDir: string;
  /** Service log lines, for diagnosing a failing test. */
  logs: string[];
  cleanup(): Promise<void>;
}

export async function startPostern(opts: {
  config: string;
  env?: Record<string, string>;
  deliveryProcesses?: number;
  /** nats-server nodes (local mode's --nats-cluster). */
  natsCluster?: number;
  /** Also run the HTTP submission API (on a free port: `apiPort`). */
  api?: boolean;
}): Promise<TestPostern> {
  // Every lookup goes to a local DNS server (nothing leaves the machine): without one from the test, an empty
  // one that answers NXDOMAIN to every name (ingress verifies inbound senders, delivery resolves MX hosts).
  const dns = opts.env?.['POSTERN_DNS_SERVERS'] ? undefined : await startTestDns({});
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-e2e-'));
  const logs: string[] = [];
  const handle = await startLocal({
    configText: opts.config,
    dataDir,
    // 0: the ingress binds free ports itself and local mode reads them back (no pick-then-bind race).
    smtpPort: 0,
    submissionPort: 0,
    apiPort: opts.api ? 0 : false,
    env: {
      LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'info',
      ...(dns ? { POSTERN_DNS_SERVERS: dns.server } : {}),
      ...opts.env,
    },
    ...(opts.deliveryProcesses ? { deliveryProcesses: opts.deliveryProcesses } : {}),
    ...(opts.natsCluster ? { natsCluster: opts.natsCluster } : {}),
    onLine: (name, line) => {
      logs.push(`${name}: ${line}`);
      if (logs.length > 5000) logs.shift();
      if (process.env['POSTERN_TEST_LOGS']) process.stderr.write(`${name}: ${line}\n`);
    },
  }).catch(async (err: Error) => {
    // startLocal has stopped what it started; the data directory is ours to remove. The service log lines
    // say why a service did not come up.
    rmSync(dataDir, { recursive: true, force: true });
    await dns?.close();
    throw new Error(`${err.message}\n${logs.slice(-20).join('\n')}`);
  });
  return {
    ...handle,
    dataDir,
    logs,
    async cleanup() {
      await handle.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await dns?.close();
    },
  };
}

/**
 * The config most e2e tests start from: a RelayPolicy named `loopback` letting `networks` relay everything through
 * the smarthost at host:port (an SMTP sink), plus any `extra` documents and policy `delivery` fields.
 */
export function smarthostRelayConfig(opts: {
  host: string;
  port: number;
  networks?: string;
  retry?: string;
  extra?: string;
}): string {
  return `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: loopback }
spec:
  clients: { networks: [${opts.networks ?? '127.0.0.1/32'}] }
  delivery:
    smarthost: { host: ${opts.host}, port: ${opts.port}, tls: none }
${opts.retry ? `    retry: ${opts.retry}\n` : ''}${opts.extra ?? ''}`;
}

/** Polls `check` until it returns a truthy value or the deadline passes (conditions, never timings). */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 60_000,
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
