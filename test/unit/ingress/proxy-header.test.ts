/** The PROXY protocol header parser (proxy-header.ts) as a table: every row is bytes in, verdict out. */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import {
  crc32c,
  type ParseResult,
  parseProxyHeader,
  TLV,
  V2_MAX_PAYLOAD,
  V2_SIGNATURE,
} from '../../../services/ingress/proxy-header.ts';

/** A v2 header: version/command byte, family/transport byte, address block, TLVs (with a CRC32C filled in). */
function v2(opts: {
  command?: number;
  famProto?: number;
  address?: number[];
  tlvs?: [number, Buffer][];
  crc?: 'good' | 'bad';
  lengthDelta?: number;
}): Buffer {
  const tlvs = [...(opts.tlvs ?? [])];
  if (opts.crc) tlvs.push([TLV.crc32c, Buffer.alloc(4)]);
  const tlvBytes = Buffer.concat(
    tlvs.map(([t, v]) => {
      const h = Buffer.alloc(3);
      h[0] = t;
      h.writeUInt16BE(v.length, 1);
      return Buffer.concat([h, v]);
    }),
  );
  const body = Buffer.concat([Buffer.from(opts.address ?? []), tlvBytes]);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | (opts.command ?? 1);
  head[1] = opts.famProto ?? 0x11;
  head.writeUInt16BE(body.length + (opts.lengthDelta ?? 0), 2);
  const header = Buffer.concat([V2_SIGNATURE, head, body]);
  if (opts.crc) {
    const sum = crc32c(header) ^ (opts.crc === 'bad' ? 1 : 0);
    header.writeUInt32BE(sum >>> 0, header.length - 4);
  }
  return header;
}

const IPV4 = [192, 0, 2, 10, 10, 0, 0, 5, 0xc3, 0x50, 0, 25]; // 192.0.2.10:50000 → 10.0.0.5:25
const IPV6 = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07],
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x19],
  ...[0x04, 0xd2, 0, 25],
]; // [2001:db8::7]:1234 → [2001:db8::19]:25

type Expect =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; fault: string }
  | {
      kind: 'header';
      version: 1 | 2;
      command: 'proxy' | 'local';
      client?: string;
      port?: number;
      length: number;
    };

function summary(r: ParseResult): Expect {
  if (r.kind === 'incomplete') return r;
  if (r.kind === 'invalid') return { kind: 'invalid', fault: r.fault };
  const h = r.header;
  return {
    kind: 'header',
    version: h.version,
    command: h.command,
    ...(h.command === 'proxy' ? { client: h.source.address, port: h.source.port } : {}),
    length: r.length,
  };
}

const text = (s: string) => Buffer.from(s, 'latin1');

/**
 * Captured from Debian's HAProxy 2.6 (`send-proxy-v2 proxy-v2-options crc32c,unique-id`, unique-id-format
 * `lb-%{+X}o%ci-%cp`) for a client 127.0.0.20:34725, followed by the client's first bytes "hi".
 */
const HAPROXY_V2 =
  '0d0a0d0a000d0a515549540a211100267f0000147f00000187a5667f030004e27b23130500106c622d37463030303031342d38374135';
const fromHaproxy = Buffer.concat([Buffer.from(HAPROXY_V2, 'hex'), text('hi')]);
const corrupted = Buffer.from(fromHaproxy);
corrupted[19] = 21; // client 127.0.0.21: the checksum no longer matches
const SMTP = text('EHLO client.test\r\n');

const TABLE: [string, Buffer, Expect][] = [
  // version 1
  [
    'v1 TCP4, SMTP bytes after it',
    Buffer.concat([text('PROXY TCP4 192.0.2.10 10.0.0.5 50000 25\r\n'), SMTP]),
    { kind: 'header', version: 1, command: 'proxy', client: '192.0.2.10', port: 50000, length: 41 },
  ],
  [
    'v1 TCP6, compressed to RFC 5952',
    text('PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::19 1234 25\r\n'),
    { kind: 'header', version: 1, command: 'proxy', client: '2001:db8::7', port: 1234, length: 54 },
  ],
  [
    'v1 UNKNOWN (short form) is the balancer itself',
    text('PROXY UNKNOWN\r\n'),
    { kind: 'header', version: 1, command: 'local', length: 15 },
  ],
  [
    'v1 UNKNOWN ignores the rest of its line',
    text('PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n'),
    { kind: 'header', version: 1, command: 'local', length: 47 },
  ],
  ['v1 partial line', text('PROXY TCP4 192.0.2.10 10.0'), { kind: 'incomplete' }],
  ['v1 partial signature', text('PRO'), { kind: 'incomplete' }],
  [
    'v1 without CRLF within 107 bytes',
    text(`PROXY TCP4 ${'1'.repeat(120)}`),
    { kind: 'invalid', fault: 'oversized' },
  ],
  [
    'v1 ended by a bare LF',
    text('PROXY TCP4 192.0.2.10 10.0.0.5 50000 25\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  ['v1 UDP4', text('PROXY UDP4 192.0.2.10 10.0.0.5 50000 25\r\n'), { kind: 'invalid', fault: 'malformed' }],
  [
    'v1 TCP4 with an IPv6 address',
    text('PROXY TCP4 2001:db8::7 10.0.0.5 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 leading zero in an IPv4 octet',
    text('PROXY TCP4 192.0.2.010 10.0.0.5 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 hostname instead of an address',
    text('PROXY TCP4 evil.example 10.0.0.5 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 port over 65535',
    text('PROXY TCP4 192.0.2.10 10.0.0.5 65536 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 port with a leading zero',
    text('PROXY TCP4 192.0.2.10 10.0.0.5 025 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 missing a port',
    text('PROXY TCP4 192.0.2.10 10.0.0.5 50000\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 extra field',
    text('PROXY TCP4 192.0.2.10 10.0.0.5 1 25 x\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 double space',
    text('PROXY TCP4  192.0.2.10 10.0.0.5 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v1 IPv6 zone index',
    text('PROXY TCP6 fe80::1%eth0 fe80::2 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'lower-case signature',
    text('proxy TCP4 192.0.2.10 10.0.0.5 1 25\r\n'),
    { kind: 'invalid', fault: 'malformed' },
  ],
  // neither
  ['SMTP instead of a header', SMTP, { kind: 'invalid', fault: 'malformed' }],
  [
    'TLS ClientHello instead of a header',
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]),
    { kind: 'invalid', fault: 'malformed' },
  ],
  ['nothing yet', Buffer.alloc(0), { kind: 'incomplete' }],
  // version 2
  [
    'v2 from HAProxy with CRC32C and unique-id TLVs',
    fromHaproxy,
    { kind: 'header', version: 2, command: 'proxy', client: '127.0.0.20', port: 34725, length: 54 },
  ],
  ['v2 from HAProxy with one address byte changed', corrupted, { kind: 'invalid', fault: 'checksum' }],
  [
    'v2 PROXY TCP4, SMTP bytes after it',
    Buffer.concat([v2({ address: IPV4 }), SMTP]),
    { kind: 'header', version: 2, command: 'proxy', client: '192.0.2.10', port: 50000, length: 28 },
  ],
  [
    'v2 PROXY TCP6',
    v2({ famProto: 0x21, address: IPV6 }),
    { kind: 'header', version: 2, command: 'proxy', client: '2001:db8::7', port: 1234, length: 52 },
  ],
  [
    'v2 TLVs (unique id, authority, NOOP, unknown) skipped over',
    v2({
      address: IPV4,
      tlvs: [
        [TLV.uniqueId, text('abc123')],
        [TLV.authority, text('mx.example')],
        [TLV.noop, Buffer.alloc(0)],
        [0xe0, Buffer.alloc(300, 7)],
      ],
    }),
    {
      kind: 'header',
      version: 2,
      command: 'proxy',
      client: '192.0.2.10',
      port: 50000,
      length: 28 + 9 + 13 + 3 + 303,
    },
  ],
  [
    'v2 with a good CRC32C',
    v2({ address: IPV4, tlvs: [[TLV.uniqueId, text('x')]], crc: 'good' }),
    { kind: 'header', version: 2, command: 'proxy', client: '192.0.2.10', port: 50000, length: 28 + 4 + 7 },
  ],
  ['v2 with a bad CRC32C', v2({ address: IPV4, crc: 'bad' }), { kind: 'invalid', fault: 'checksum' }],
  [
    'v2 LOCAL with UNSPEC (health check)',
    v2({ command: 0, famProto: 0x00 }),
    { kind: 'header', version: 2, command: 'local', length: 16 },
  ],
  [
    'v2 LOCAL ignores whatever addresses it carries',
    v2({ command: 0, famProto: 0x11, address: IPV4 }),
    { kind: 'header', version: 2, command: 'local', length: 28 },
  ],
  ['v2 PROXY UDP4', v2({ famProto: 0x12, address: IPV4 }), { kind: 'invalid', fault: 'unsupported' }],
  [
    'v2 PROXY UNIX stream',
    v2({ famProto: 0x31, address: new Array(216).fill(0) }),
    { kind: 'invalid', fault: 'unsupported' },
  ],
  ['v2 PROXY UNSPEC (no client address)', v2({ famProto: 0x00 }), { kind: 'invalid', fault: 'unsupported' }],
  ['v2 unknown family 4', v2({ famProto: 0x41, address: IPV4 }), { kind: 'invalid', fault: 'malformed' }],
  ['v2 unknown command 2', v2({ command: 2, address: IPV4 }), { kind: 'invalid', fault: 'malformed' }],
  [
    'v2 version 1 in the binary header',
    Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), Buffer.from(IPV4)]),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v2 length shorter than the TCP4 address block',
    v2({ address: IPV4.slice(0, 8) }),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v2 TLV running past the header',
    (() => {
      const h = v2({ address: IPV4, tlvs: [[TLV.uniqueId, text('abcd')]] });
      h.writeUInt16BE(40, 29); // the TLV claims 40 bytes, 4 are there
      return h;
    })(),
    { kind: 'invalid', fault: 'malformed' },
  ],
  ['v2 stray byte after the TLVs', v2({ address: [...IPV4, 0x04] }), { kind: 'invalid', fault: 'malformed' }],
  ['v2 truncated in the fixed part', v2({ address: IPV4 }).subarray(0, 14), { kind: 'incomplete' }],
  ['v2 truncated in the address block', v2({ address: IPV4 }).subarray(0, 22), { kind: 'incomplete' }],
  ['v2 partial signature', V2_SIGNATURE.subarray(0, 5), { kind: 'incomplete' }],
  [
    'v2 signature broken at byte 7',
    Buffer.concat([V2_SIGNATURE.subarray(0, 7), text('XUIT\n'), Buffer.alloc(8)]),
    { kind: 'invalid', fault: 'malformed' },
  ],
  [
    'v2 length over the cap, refused before it arrives',
    v2({ address: IPV4, lengthDelta: V2_MAX_PAYLOAD }).subarray(0, 16),
    { kind: 'invalid', fault: 'oversized' },
  ],
];

describe('PROXY protocol header parser', () => {
  for (const [name, bytes, expected] of TABLE) {
    it(name, () => assert.deepEqual(summary(parseProxyHeader(bytes)), expected));
  }

  it('says incomplete for every strict prefix of a good header, then parses the whole', () => {
    for (const header of [
      v2({ famProto: 0x21, address: IPV6, tlvs: [[TLV.uniqueId, text('id')]], crc: 'good' }),
      text('PROXY TCP4 192.0.2.10 10.0.0.5 50000 25\r\n'),
    ]) {
      for (let n = 1; n < header.length; n++) {
        assert.equal(parseProxyHeader(header.subarray(0, n)).kind, 'incomplete', `prefix of ${n} bytes`);
      }
      assert.equal(parseProxyHeader(header).kind, 'header');
    }
  });

  it('keeps the TLVs it skipped, by type', () => {
    const r = parseProxyHeader(fromHaproxy);
    assert.equal(r.kind, 'header');
    if (r.kind !== 'header') return;
    assert.deepEqual(
      r.header.tlvs.map((t) => [t.type, t.value.toString()]),
      [
        [TLV.crc32c, Buffer.from('e27b2313', 'hex').toString()],
        [TLV.uniqueId, 'lb-7F000014-87A5'],
      ],
    );
  });

  it('never throws on mutated headers, and whatever it accepts names a real address within the bytes given', () => {
    // Deterministic mutation fuzzing (bounded): flipped, inserted and deleted bytes and truncations of good headers.
    let seed = 0x5eed;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const seeds = [
      fromHaproxy,
      v2({ famProto: 0x21, address: IPV6, tlvs: [[TLV.authority, text('mx.example')]], crc: 'good' }),
      v2({ command: 0, famProto: 0x00 }),
      text('PROXY TCP4 192.0.2.10 10.0.0.5 50000 25\r\n'),
      text('PROXY TCP6 2001:db8::7 2001:db8::19 1234 25\r\n'),
      text('PROXY UNKNOWN\r\n'),
    ];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = [...(seeds[rand(seeds.length)] ?? Buffer.alloc(0))];
      for (let m = 1 + rand(3); m > 0; m--) {
        const at = rand(bytes.length + 1);
        const op = rand(4);
        if (op === 0) bytes[at] = rand(256);
        else if (op === 1) bytes.splice(at, 0, rand(256));
        else if (op === 2) bytes.splice(at, 1);
        else bytes.length = at;
      }
      const buf = Buffer.from(bytes);
      const r = parseProxyHeader(buf);
      if (r.kind !== 'header') continue;
      accepted++;
      assert.ok(r.length <= buf.length, `length ${r.length} > ${buf.length}`);
      if (r.header.command === 'proxy') {
        assert.ok(isIP(r.header.source.address), r.header.source.address);
        assert.ok(r.header.source.port >= 0 && r.header.source.port <= 65535);
      }
    }
    // Some mutations keep a header valid (a changed port, a v1 line truncated after its CRLF): the check above ran.
    assert.ok(accepted > 0);
  });

  it('computes CRC-32C (RFC 4960 Appendix B check value)', () => {
    assert.equal(crc32c(text('123456789')), 0xe3069283);
  });
});
