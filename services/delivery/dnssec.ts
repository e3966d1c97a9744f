/**
 * DNS queries that report whether the answer was DNSSEC-authenticated, for DANE (RFC 7672).
 *
 * node:dns (c-ares) does not expose the AD bit, and DANE must only trust TLSA records a validating resolver
 * authenticated (RFC 7672 §2.2, RFC 6698 §4). So this module sends its own queries (dns-packet) with the AD bit
 * set, which asks the resolver to report its validation result (RFC 6840 §5.7), and reads AD off the reply.
 * The resolver is trusted to validate: it must be a validating resolver reached over a trusted path
 * (loopback or a node-local cache), see docs/delivery.md "DANE".
 */
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface AuthenticatedAnswer<T> {
  /** NOERROR, NXDOMAIN, SERVFAIL, … */
  rcode: string;
  /** The resolver validated the answer (AD bit). */
  authenticated: boolean;
  records: T[];
}

export interface TlsaRecord {
  usage: number;
  selector: number;
  mtype: number;
  cert: Buffer;
}

export interface DnssecResolver {
  tlsa(name: string): Promise<AuthenticatedAnswer<TlsaRecord>>;
  /** A (or AAAA) lookup of a host, for its zone's DNSSEC status (RFC 7672 §2.2.2). */
  address(name: string): Promise<AuthenticatedAnswer<string>>;
}

/** A DNS failure the caller must not read as "no records" (RFC 7672 §2.2: fail closed). */
export class DnsLookupError extends Error {
  code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

function parseServer(text: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text.trim());
  // An IPv6 address without brackets has colons but no port.
  if (text.split(':').length > 2 && !text.startsWith('[')) return { host: text, port: 53 };
  return { host: m?.[1] ?? text, port: m?.[2] ? Number(m[2]) : 53 };
}

function udpQuery(server: { host: string; port: number }, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new DnsLookupError(`DNS query to ${server.host}:${server.port} timed out`, 'ETIMEOUT'));
    }, timeoutMs);
    sock.once('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(query, server.port, server.host);
  });
}

/** RFC 7766: DNS over TCP, for answers too large for UDP (TC bit). */
function tcpQuery(server: { host: string; port: number }, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeoutMs, () =>
      fail(new DnsLookupError(`DNS query to ${server.host}:${server.port} timed out`, 'ETIMEOUT')),
    );
    sock.once('error', fail);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    sock.connect(server.port, server.host, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
  });
}

/**
 * @param servers `ip` or `ip:port` (POSTERN_DNS_SERVERS); empty = the system's resolvers.
 */
export function createDnssecResolver(servers: string[], timeoutMs = 5000): DnssecResolver {
  const list = (servers.length > 0 ? servers : getServers()).map(parseServer);

  async function query(name: string, type: 'TLSA' | 'A' | 'AAAA'): Promise<dnsPacket.DecodedPacket> {
    const packet = dnsPacket.encode({
      type: 'query',
      id: Math.floor(Math.random() * 65_535),
      // RD + AD: "tell me whether you validated this" (RFC 6840 §5.7); EDNS0 for answers above 512 bytes.
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer],
    });
    let lastErr: Error | undefined;
    for (const server of list) {
      try {
        let reply = dnsPacket.decode(await udpQuery(server, packet, timeoutMs));
        if (reply.flag_tc) reply = dnsPacket.decode(await tcpQuery(server, packet, timeoutMs));
        return reply;
      } catch (err) {
        lastErr = err as Error;
      }
    }
    throw lastErr ?? new DnsLookupError('no DNS server configured', 'ECONNREFUSED');
  }

  async function lookup<T>(
    name: string,
    type: 'TLSA' | 'A' | 'AAAA',
    pick: (a: dnsPacket.Answer) => T | undefined,
  ): Promise<AuthenticatedAnswer<T>> {
    const reply = await query(name, type);
    const rcode = (reply as unknown as { rcode?: string }).rcode ?? 'NOERROR';
    if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
      // SERVFAIL is what a validating resolver answers for bogus (failed validation) data.
      throw new DnsLookupError(`${type} lookup of ${name} failed: ${rcode}`, rcode);
    }
    const records = (reply.answers ?? [])
      .filter((a) => a.type === type)
      .map(pick)
      .filter((r): r is T => r !== undefined);
    return { rcode, authenticated: reply.flag_ad, records };
  }

  return {
    tlsa: (name) =>
      lookup(name, 'TLSA', (a) => {
        const d = (a as dnsPacket.TlsaAnswer).data;
        return { usage: d.usage, selector: d.selector, mtype: d.matchingType, cert: d.certificate };
      }),
    async address(name) {
      const v4 = await lookup(name, 'A', (a) => (a as dnsPacket.StringAnswer).data);
      return v4.records.length > 0 ? v4 : lookup(name, 'AAAA', (a) => (a as dnsPacket.StringAnswer).data);
    },
  };
}
