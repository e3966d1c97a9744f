/**
 * The system the fuzzer attacks: a real ingress process (`node services/ingress/main.ts`) against a real
 * nats-server, with four listeners on loopback — MX (relay rules, STARTTLS offered), submission (AUTH after
 * STARTTLS), smtps (implicit TLS) and an MX listener expecting a PROXY v1 header — the configuration of
 * smtp-grammar.ts's TARGET, short timeouts so hostile sessions end quickly, and the probes the oracles read:
 * liveness, RSS, heap, open sessions and every envelope the ingress published.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { hashPassword } from '../../services/common/config/password.ts';
import { CONFIG_BUCKET, DEFAULT_RETRY, domainKey, policyKey } from '../../services/common/config/resolved.ts';
import { connectNats, ensureConsumer, ensureTopology, STREAMS } from '../../services/common/nats.ts';
import type { Envelope } from '../../services/common/types.ts';
import { seenEnvelope } from '../helpers/bodies.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createTestCa, type TestCa } from '../helpers/test-ca.ts';
import {
  type IngressProcess,
  startIngressProcess,
  stopIngressProcesses,
} from '../integration/ingress/ingress-process.ts';
import { TARGET } from './smtp-grammar.ts';

export interface FuzzTarget {
  ports: { mx: number; submission: number; smtps: number; proxy: number };
  pid: number;
  /** The process has neither exited nor been killed. */
  alive(): boolean;
  /** HTTP status of /healthz (0 when nothing answers). */
  healthz(): Promise<number>;
  /** VmRSS of the ingress process in bytes. */
  rssBytes(): number;
  /** A metric value from /metrics (first sample whose line starts with `name`), NaN when absent. */
  metric(name: string): Promise<number>;
  /** Every envelope published on SUBMIT since the last call (acked, so each is returned once). */
  drainEnvelopes(): Promise<Envelope[]>;
  /** stderr and non-JSON stdout of the process (a crash's stack trace lands here). */
  crashOutput(): string;
  /** Drops collected log lines except stderr and the last 200 (long runs). */
  trimLogs(): void;
  stop(): Promise<void>;
}

const ORACLE_CONSUMER = 'fuzz-oracle';

export async function startFuzzTarget(extraEnv: Record<string, string> = {}): Promise<FuzzTarget> {
  let nats: TestNats | undefined;
  let nc: NatsConnection | undefined;
  let ca: TestCa | undefined;
  let ingress: IngressProcess | undefined;
  const stop = async () => {
    await stopIngressProcesses(ingress);
    await nc?.close().catch(() => undefined);
    await nats?.cleanup();
    ca?.close();
  };
  try {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'fuzz-oracle');
    await ensureTopology(nc);
    const kv = await new Kvm(nc).open(CONFIG_BUCKET);
    await kv.put(
      domainKey(TARGET.inboundDomain),
      JSON.stringify({
        source: `fuzz/${TARGET.inboundDomain}`,
        domain: TARGET.inboundDomain,
        inbound: { enabled: true, recipients: [...TARGET.recipients] },
      }),
    );
    await kv.put(
      policyKey('fuzz', 'relay'),
      JSON.stringify({
        source: 'fuzz/relay',
        networks: [TARGET.relayNetwork],
        users: [{ name: TARGET.user, hash: hashPassword(TARGET.password) }],
        requireTLS: false,
        limits: {},
        delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
      }),
    );
    await ensureConsumer(nc, STREAMS.submit, ORACLE_CONSUMER, 'mail.submit.>');
    ca = createTestCa('Postern Fuzz CA');
    const leaf = ca.issue(['localhost', '127.0.0.1', TARGET.hostname]);
    const certFile = join(ca.caFile, '..', 'fuzz-cert.pem');
    const keyFile = join(ca.caFile, '..', 'fuzz-key.pem');
    writeFileSync(certFile, leaf.cert);
    writeFileSync(keyFile, leaf.key);
    ingress = await startIngressProcess(nats.url, {
      // info: startIngressProcess waits for the `ready` line; trimLogs() keeps the collected lines bounded.
      LOG_LEVEL: 'info',
      POSTERN_HOSTNAME: TARGET.hostname,
      POSTERN_POSTMASTER: TARGET.postmaster,
      POSTERN_TLS_CERT: certFile,
      POSTERN_TLS_KEY: keyFile,
      POSTERN_INGRESS_LISTENERS: JSON.stringify([
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
        { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission' },
        { name: 'smtps', host: '127.0.0.1', port: 0, mode: 'smtps' },
        { name: 'proxy', host: '127.0.0.1', port: 0, mode: 'relay', proxyProtocol: true },
      ]),
      // The fuzzer is the load balancer of the PROXY listener (its headers lie freely: that is the point).
      POSTERN_PROXY_TRUSTED_NETWORKS: '127.0.0.0/8',
      POSTERN_PROXY_HEADER_TIMEOUT_MS: '2000',
      POSTERN_MAX_MESSAGE_SIZE: String(1024 * 1024),
      // Hostile sessions must end quickly: every session of the fuzzer waits for the server to close it.
      POSTERN_SMTP_IDLE_TIMEOUT_MS: '3000',
      POSTERN_SMTP_COMMAND_TIMEOUT_MS: '6000',
      POSTERN_SMTP_SESSION_TIMEOUT_MS: '60000',
      POSTERN_SMTP_MAX_CONNECTIONS_PER_IP: '500',
      // The fuzzer sends garbage AUTHs all the time; a lockout would only hide the authenticated paths.
      POSTERN_AUTH_FAILURES_PER_IP: '1000000000',
      POSTERN_AUTH_FAILURES_PER_USER: '1000000000',
      ...extraEnv,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const proc = ingress.proc;
  const ready = proc.lines.find((l) => l['msg'] === 'ready');
  const bound = (ready?.['listeners'] ?? []) as { name: string; address: string }[];
  const port = (name: string) =>
    Number(
      bound
        .find((l) => l.name === name)
        ?.address.split(':')
        .pop(),
    );
  const consumer = await jetstream(nc).consumers.get(STREAMS.submit, ORACLE_CONSUMER);
  const pid = proc.child.pid!;
  return {
    ports: { mx: port('mx'), submission: port('submission'), smtps: port('smtps'), proxy: port('proxy') },
    pid,
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    healthz: () => proc.probe('/healthz'),
    rssBytes() {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      } catch {
        return 0;
      }
    },
    async metric(name) {
      try {
        const text = await (await fetch(`http://127.0.0.1:${proc.metricsPort}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(name) && !l.startsWith('#'));
        return line ? Number(line.split(' ').pop()) : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    async drainEnvelopes() {
      const out: Envelope[] = [];
      // Bounded: ends at the first empty fetch; each message is acked so it is read once.
      for (;;) {
        const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
        let n = 0;
        for await (const m of batch) {
          out.push(seenEnvelope(m));
          m.ack();
          n++;
        }
        if (n === 0) return out;
      }
    },
    crashOutput: () =>
      proc.lines
        .filter((l) => l['stderr'] || l['level'] === undefined)
        .map((l) => String(l['msg']))
        .join('\n'),
    trimLogs() {
      const keep = [...proc.lines.filter((l) => l['stderr']).slice(-50), ...proc.lines.slice(-200)];
      proc.lines.splice(0, proc.lines.length, ...keep);
    },
    stop,
  };
}
