/**
 * Shared setup for the ingress integration tests: a real nats-server, the topology, config documents written to
 * the KV bucket, the ingress started in-process, a test consumer on SUBMIT, swaks as the client, raw sockets for
 * what swaks cannot send (bare LF, pipelined bursts), and a throwaway self-signed certificate.
 */

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  CONFIG_BUCKET,
  DEFAULT_RETRY,
  domainKey,
  policyKey,
} from '../../../services/common/config/resolved.ts';
import { ConfigStore } from '../../../services/common/config/store.ts';
import { connectNats, ensureConsumer, ensureTopology, STREAMS } from '../../../services/common/nats.ts';
import { type Ingress, startIngress } from '../../../services/ingress/service.ts';
import type { IngressSettings, ListenerSettings } from '../../../services/ingress/settings.ts';
import { type SeenEnvelope, seenEnvelope } from '../../helpers/bodies.ts';
import { startTestDns } from '../../helpers/dns.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';

export interface Harness {
  /** Replace with the result of `nats.restart()` after an outage, so `stop` cleans up the running one. */
  nats: TestNats;
  nc: NatsConnection;
  kv: KV;
  config: ConfigStore;
  ingress: Ingress;
  registry: Registry;
  port(name: string): number;
  /** Next envelope published on SUBMIT (acked), or undefined when none arrives within `waitMs`. */
  nextEnvelope(waitMs?: number): Promise<SeenEnvelope | undefined>;
  /** Waits until the ingress' live config satisfies `test` (bounded). */
  waitForConfig(test: () => boolean): Promise<void>;
  stop(): Promise<void>;
}

export const TEST_CONSUMER = 'ingress-test';

/**
 * Config documents most ingress tests start from: ours.example as an inbound domain and the RelayPolicy prod/office
 * letting `network` relay (opportunistic TLS, default pool and retry).
 */
export function oursAndOffice(network: string): Record<string, unknown> {
  return {
    [domainKey('ours.example')]: { source: 'mail/ours', domain: 'ours.example', inbound: { enabled: true } },
    [policyKey('prod', 'office')]: {
      source: 'prod/office',
      networks: [network],
      users: [],
      requireTLS: false,
      limits: {},
      delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
    },
  };
}

/** A self-signed certificate for localhost, generated with openssl for this run. */
export function selfSignedCert(): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
      ].concat(['-subj', '/CN=localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]),
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startHarness(opts: {
  listeners: ListenerSettings[];
  documents?: Record<string, unknown>;
  settings?: Partial<IngressSettings>;
}): Promise<Harness> {
  // Sender authentication looks names up: answer them locally (NXDOMAIN for all), nothing leaves the machine.
  const dns = opts.settings?.dnsServers ? undefined : await startTestDns({});
  const nats = await startTestNats();
  const nc = await connectNats(nats.url, 'ingress-test');
  await ensureTopology(nc);
  const kv = await new Kvm(nc).open(CONFIG_BUCKET);
  for (const [key, doc] of Object.entries(opts.documents ?? {})) await kv.put(key, JSON.stringify(doc));
  const config = new ConfigStore();
  await config.start(nc);
  await ensureConsumer(nc, STREAMS.submit, TEST_CONSUMER, 'mail.submit.>');
  const registry = new Registry();
  const ingress = await startIngress({
    nc,
    config,
    registry,
    logger: pino({ level: process.env['LOG_LEVEL'] ?? 'silent' }),
    settings: {
      listeners: opts.listeners,
      hostname: 'mx.test.postern',
      maxMessageSize: 1024 * 1024,
      publishTimeoutMs: 1500,
      inlineBodyMax: 256 * 1024,
      reusePort: false,
      // These tests read what ingress hands off as an envelope (SUBMIT); routing at receipt, which would send the
      // common case to OUTBOUND instead, has its own tests (direct-routing.test.ts).
      directRouting: false,
      ...(dns ? { dnsServers: [dns.server] } : {}),
      ...opts.settings,
    },
  });
  const consumer = await jetstream(nc).consumers.get(STREAMS.submit, TEST_CONSUMER);
  const harness: Harness = {
    nats,
    nc,
    kv,
    config,
    ingress,
    registry,
    port(name) {
      const l = ingress.listeners.find((x) => x.name === name);
      if (!l) throw new Error(`no listener ${name}`);
      return l.port;
    },
    async nextEnvelope(waitMs = 3000) {
      const m = await consumer.next({ expires: waitMs });
      if (!m) return undefined;
      await m.ackAck();
      return seenEnvelope(m);
    },
    async waitForConfig(test) {
      for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 50));
      if (!test()) throw new Error('config change did not arrive');
    },
    async stop() {
      await ingress.close();
      config.stop();
      await nc.close().catch(() => undefined);
      // After an outage test `nats` was replaced by the restarted server.
      await harness.nats.cleanup();
      await dns?.close();
    },
  };
  return harness;
}

export interface SwaksResult {
  code: number;
  output: string;
}

/** Runs swaks (a real SMTP client no one here wrote); `args` are appended to --server. */
export function swaks(port: number, args: string[], timeoutMs = 30_000): Promise<SwaksResult> {
  return new Promise((resolve) => {
    execFile(
      'swaks',
      ['--server', `127.0.0.1:${port}`, '--helo', 'client.test', '--timeout', '20', ...args],
      { timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

/** The server replies swaks printed ("<-", "<~" over TLS, with "*" marking errors), for readable asserts. */
export function serverReplies(output: string): string[] {
  return output
    .split('\n')
    .filter((l) => /^\s*<[-~*]\*{0,2}\s/.test(l))
    .map((l) => l.replace(/^\s*<[-~*]\*{0,2}\s+/, ''));
}

/** A raw SMTP client over net.Socket: write bytes, read complete replies. */
export class RawSmtp {
  #socket: Socket;
  #buffer = '';
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  /** Connects to the ingress on 127.0.0.1 from `localAddress` (any 127.0.0.N). */
  static open(port: number, localAddress = '127.0.0.1'): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(new RawSmtp(s)));
      s.once('error', reject);
    });
  }

  write(text: string | Buffer): void {
    this.#socket.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  }

  /** The next complete (possibly multi-line) reply, e.g. "250 2.0.0 Ok"; rejects after `waitMs`. */
  async reply(waitMs = 10_000): Promise<string> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const m = /^((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)/.exec(this.#buffer);
      if (m?.[1]) {
        this.#buffer = this.#buffer.slice(m[1].length);
        return m[1].trimEnd();
      }
      if (this.#closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.#buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${waitMs} ms; unread: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}
