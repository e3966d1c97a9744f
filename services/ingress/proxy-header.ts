/**
 * PURE parser of PROXY protocol headers, version 1 (text) and 2 (binary, with TLVs), as HAProxy's
 * proxy-protocol.txt specifies them. Fed the bytes received so far, it answers "incomplete", "invalid" or the
 * header and its length, so the caller reads exactly the header and hands every later byte to SMTP.
 *
 * Written here rather than taken from npm: proxy-protocol-js (the maintained one) parses a v2 header from a buffer
 * that must already hold exactly it — it reads past a truncated address block (yielding null bytes as an address),
 * does not bound the header by its length field (the TLV "data" runs on into the SMTP bytes) and parses no TLVs —
 * and its v1 parser accepts any token as an address and refuses "PROXY UNKNOWN". Every one of those matters on an
 * SMTP port: the address this parser returns decides relay rights.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** v2 signature (spec §2.2): "\r\n\r\n\0\r\nQUIT\n", chosen to be rejected by any text protocol. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Spec §2.1: the v1 line including CRLF fits in 107 bytes; no CRLF by then is invalid. */
export const V1_MAX_LENGTH = 107;
/**
 * Address block plus TLVs we accept in a v2 header (the length field allows 65535). HAProxy's largest TLVs —
 * unique id (128), authority (255), the SSL group with a client CN — stay far below this.
 */
export const V2_MAX_PAYLOAD = 2048;

/** PP2_TYPE_* (spec §2.2): the TLVs we name in logs; others are kept by number and otherwise ignored. */
export const TLV = {
  alpn: 0x01,
  authority: 0x02,
  crc32c: 0x03,
  noop: 0x04,
  uniqueId: 0x05,
  ssl: 0x20,
} as const;

export interface Tlv {
  type: number;
  value: Buffer;
}

export interface Endpoint {
  address: string;
  port: number;
}

/**
 * `local`: the balancer speaks for itself (v2 LOCAL, e.g. a health check; v1 UNKNOWN): the connection's own
 * addresses apply. `proxy`: a TCP client's connection relayed by the balancer.
 */
export type ProxyHeader =
  | { version: 1 | 2; command: 'local'; tlvs: Tlv[] }
  | {
      version: 1 | 2;
      command: 'proxy';
      family: 'tcp4' | 'tcp6';
      source: Endpoint;
      destination: Endpoint;
      tlvs: Tlv[];
    };

/** Why a header was refused (metric label): bad syntax, too long, a family SMTP cannot use, or a bad CRC32C. */
export type HeaderFault = 'malformed' | 'oversized' | 'unsupported' | 'checksum';

export type ParseResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; fault: HeaderFault; detail: string }
  | { kind: 'header'; header: ProxyHeader; length: number };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const invalid = (fault: HeaderFault, detail: string): ParseResult => ({ kind: 'invalid', fault, detail });

/** True while `buf` could still become `prefix` (or already starts with it). */
function couldBe(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/** Parses the header at the start of `buf` (all bytes received so far). */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (couldBe(buf, V2_SIGNATURE)) return buf.length < 16 ? INCOMPLETE : parseV2(buf);
  if (couldBe(buf, V1_PREFIX)) return parseV1(buf);
  return invalid('malformed', 'no PROXY protocol signature');
}

// --- version 1 -------------------------------------------------------------------------------------------------

/** Decimal port, no leading zero (spec §2.1), 0–65535. */
function port(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

function parseV1(buf: Buffer): ParseResult {
  const lf = buf.indexOf(0x0a);
  if (lf < 0)
    return buf.length >= V1_MAX_LENGTH ? invalid('oversized', 'no CRLF within 107 bytes') : INCOMPLETE;
  if (lf + 1 > V1_MAX_LENGTH) return invalid('oversized', 'line longer than 107 bytes');
  // Spec: a lone LF (or CR) must not end the line.
  if (buf[lf - 1] !== 0x0d) return invalid('malformed', 'line not ended by CRLF');
  const line = buf.subarray(0, lf - 1).toString('latin1');
  const [, proto, ...rest] = line.split(' ');
  const length = lf + 1;
  // Spec: for UNKNOWN the receiver ignores the rest of the line and uses the connection's own addresses.
  if (proto === 'UNKNOWN')
    return { kind: 'header', length, header: { version: 1, command: 'local', tlvs: [] } };
  if (proto !== 'TCP4' && proto !== 'TCP6')
    return invalid('malformed', `unknown protocol ${JSON.stringify(proto)}`);
  const [src = '', dst = '', sport = '', dport = '', extra] = rest;
  const isFamily = proto === 'TCP4' ? isIPv4 : isIPv6;
  // isIPv4 refuses leading zeros ("010.0.0.1"), as the spec asks; both must be of the announced family.
  // A zone index (fe80::1%eth0) names an interface of the balancer, not a client.
  if (extra !== undefined || !isFamily(src) || !isFamily(dst) || `${src}${dst}`.includes('%')) {
    return invalid('malformed', 'bad address');
  }
  const sp = port(sport);
  const dp = port(dport);
  if (sp === undefined || dp === undefined) return invalid('malformed', 'bad port');
  const family = proto === 'TCP4' ? 'tcp4' : 'tcp6';
  return {
    kind: 'header',
    length,
    header: {
      version: 1,
      command: 'proxy',
      family,
      source: { address: canonical(src, family), port: sp },
      destination: { address: canonical(dst, family), port: dp },
      tlvs: [],
    },
  };
}

// --- version 2 -------------------------------------------------------------------------------------------------

/** RFC 5952 text form, so the same client reads the same in policy checks, counters and logs. */
function canonical(address: string, family: 'tcp4' | 'tcp6'): string {
  return new SocketAddress({ address, family: family === 'tcp4' ? 'ipv4' : 'ipv6' }).address;
}

function v6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonical(groups.join(':'), 'tcp6');
}

function parseV2(buf: Buffer): ParseResult {
  if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) return invalid('malformed', 'bad v2 signature');
  const versionCommand = buf[12] ?? 0;
  if (versionCommand >> 4 !== 2) return invalid('malformed', `version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('malformed', `command ${command}`);
  const familyTransport = buf[13] ?? 0;
  const payload = buf.readUInt16BE(14);
  if (payload > V2_MAX_PAYLOAD) return invalid('oversized', `${payload} bytes of addresses and TLVs`);
  const length = 16 + payload;
  if (buf.length < length) return INCOMPLETE;
  const header = buf.subarray(0, length);
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  // Address block size per family (spec §2.2): INET 12, INET6 36, UNIX 216, UNSPEC 0.
  const addressLength = [0, 12, 36, 216][family];
  if (addressLength === undefined || transport > 2)
    return invalid('malformed', `family/transport 0x${hex(familyTransport)}`);
  if (payload < addressLength) return invalid('malformed', 'address block longer than the header');
  const tlvs = parseTlvs(header.subarray(16 + addressLength));
  if (!tlvs) return invalid('malformed', 'TLVs do not fill the header exactly');
  const crc = tlvs.find((t) => t.type === TLV.crc32c);
  if (crc && !checksumMatches(header, crc)) return invalid('checksum', 'CRC32C mismatch');
  // Spec: with LOCAL the receiver must accept the connection and ignore any address information.
  if (command === 0) return { kind: 'header', length, header: { version: 2, command: 'local', tlvs } };
  // A relayed connection SMTP can act on is TCP over IPv4 or IPv6; for UDP, UNIX sockets or an unspecified
  // family there is no client address to judge, and falling back to the balancer's own address could hand a
  // client the balancer's relay rights.
  if ((family !== 1 && family !== 2) || transport !== 1) {
    return invalid('unsupported', `family/transport 0x${hex(familyTransport)}`);
  }
  const a = header.subarray(16);
  const [source, destination]: [Endpoint, Endpoint] =
    family === 1
      ? [
          { address: [...a.subarray(0, 4)].join('.'), port: a.readUInt16BE(8) },
          { address: [...a.subarray(4, 8)].join('.'), port: a.readUInt16BE(10) },
        ]
      : [
          { address: v6(a.subarray(0, 16)), port: a.readUInt16BE(32) },
          { address: v6(a.subarray(16, 32)), port: a.readUInt16BE(34) },
        ];
  return {
    kind: 'header',
    length,
    header: {
      version: 2,
      command: 'proxy',
      family: family === 1 ? 'tcp4' : 'tcp6',
      source,
      destination,
      tlvs,
    },
  };
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Type (1 byte), length (2 bytes, big endian), value; they must end exactly where the header ends. */
function parseTlvs(bytes: Buffer): Tlv[] | undefined {
  const tlvs: Tlv[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 3 > bytes.length) return undefined;
    const length = bytes.readUInt16BE(at + 1);
    if (at + 3 + length > bytes.length) return undefined;
    tlvs.push({ type: bytes[at] ?? 0, value: bytes.subarray(at + 3, at + 3 + length) });
    at += 3 + length;
  }
  return tlvs;
}

/** Spec §2.2.3: CRC32C over the whole header with the checksum's own four bytes zeroed. */
function checksumMatches(header: Buffer, tlv: Tlv): boolean {
  if (tlv.value.length !== 4) return false;
  const copy = Buffer.from(header);
  const offset = tlv.value.byteOffset - header.byteOffset;
  copy.fill(0, offset, offset + 4);
  return crc32c(copy) === tlv.value.readUInt32BE(0);
}

let table: Uint32Array | undefined;

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 4960 Appendix B). node:zlib only has CRC-32. */
export function crc32c(bytes: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = (table[(crc ^ b) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
