/**
 * Test helper: a real DNS server (dnsmasq, foreground, loopback only) answering the MX/A records a test defines.
 *
 * Every name it does not define answers NXDOMAIN at once (`--local=/#/`: all domains are local, no upstream), so
 * "no such domain" tests do not wait for a resolver timeout. Null MX (RFC 7505, `MX 0 .`) cannot be written with
 * `--mx-host`, so it is served as a raw RR (`--dns-rr`, type 15, RDATA = preference 0 + root label).
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from './daemon.ts';
import { freePort } from './smtp-sink.ts';

export const DNSMASQ = process.env['DNSMASQ'] ?? '/usr/sbin/dnsmasq';

export interface DnsRecords {
  mx?: { domain: string; exchange: string; priority: number }[];
  a?: { name: string; address: string }[];
  /** TXT records (`_mta-sts.<domain>`, `_smtp._tls.<domain>`), one string each. */
  txt?: { name: string; text: string }[];
  /** Domains publishing a null MX (`0 .`, RFC 7505): "this domain accepts no mail". */
  nullMx?: string[];
  /** Domains whose lookups fail with SERVFAIL (forwarded to a dead upstream), for "DNS is broken" tests. */
  servfail?: string[];
  /** TTL of every answer in seconds (dnsmasq `--local-ttl`; default 0 = "do not cache"). */
  ttl?: number;
}

export interface TestDns {
  /** '127.0.0.1:PORT', usable with node:dns `Resolver.setServers([server])` and POSTERN_DNS_SERVERS. */
  server: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/** A port free for both UDP and TCP (dnsmasq binds both). Bounded retries. */
async function freeDnsPort(host: string): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(host);
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, host, () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free UDP+TCP port for dnsmasq');
}

/** dnsmasq arguments for the records; exported for the unit test of the mapping. */
export function dnsmasqArgs(records: DnsRecords, host: string, port: number, deadUpstream: string): string[] {
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    `--listen-address=${host}`,
    '--bind-interfaces',
    `--port=${port}`,
    '--pid-file',
    '--user=',
    // Keep answers fresh for tests that reuse names; we are the authority anyway.
    '--cache-size=0',
  ];
  if (records.ttl !== undefined) args.push(`--local-ttl=${records.ttl}`);
  for (const d of records.servfail ?? []) args.push(`--server=/${d}/${deadUpstream}`);
  // All other names are local data: unknown names get NXDOMAIN immediately instead of "no upstream" REFUSED.
  args.push('--local=/#/');
  for (const mx of records.mx ?? []) args.push(`--mx-host=${mx.domain},${mx.exchange},${mx.priority}`);
  for (const a of records.a ?? []) args.push(`--host-record=${a.name},${a.address}`);
  for (const d of records.nullMx ?? []) args.push(`--dns-rr=${d},15,000000`);
  // Unquoted (no shell between us and dnsmasq): a ',' in the text splits it into several character-strings of
  // one record, which readers concatenate (RFC 8461 §3.1, RFC 8460 §3).
  for (const t of records.txt ?? []) args.push(`--txt-record=${t.name},${t.text}`);
  return args;
}

/** Sends one DNS query (A for "probe.invalid") and reports whether any reply came back within 500 ms. */
function probe(host: string, port: number): Promise<boolean> {
  // RFC 1035 §4.1: header (id, RD flag, QDCOUNT=1), QNAME as length-prefixed labels, QTYPE=A, QCLASS=IN.
  const query = Buffer.from('beef010000010000000000000570726f626507696e76616c69640000010001', 'hex');
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 500);
    sock.once('message', () => finish(true));
    sock.once('error', () => finish(false));
    sock.send(query, port, host);
  });
}

export async function startTestDns(records: DnsRecords): Promise<TestDns> {
  const host = '127.0.0.1';
  const port = await freeDnsPort(host);
  // A "dead upstream" that answers nothing: a closed UDP port on loopback yields ICMP unreachable → SERVFAIL.
  const deadPort = await freeDnsPort(host);
  const dir = mkdtempSync(join(tmpdir(), 'postern-dns-'));
  const daemon = startDaemon(DNSMASQ, dnsmasqArgs(records, host, port, `${host}#${deadPort}`), dir);
  const close = daemon.close;

  // Ready when a query gets any answer. A raw UDP probe rather than node:dns: a c-ares Resolver keeps the event
  // loop alive for seconds after use, which would delay every test process's exit.
  const deadline = Date.now() + 15_000;
  while (!(await probe(host, port))) {
    if (daemon.exited() || Date.now() > deadline) {
      await close();
      throw new Error(`dnsmasq did not answer on ${host}:${port}: ${daemon.stderr().trim()}`);
    }
    await sleep(100);
  }
  return { server: `${host}:${port}`, host, port, close };
}
