/**
 * The fuzzer's input grammar (fast-check arbitraries, so a failing case shrinks to a small one): SMTP sessions
 * built from real verbs in every case and spacing, hostile addresses (source routes, quoting, %, !, literals,
 * UTF-8, over-long parts), ESMTP parameters (SIZE, BODY, SMTPUTF8, DSN's RET/ENVID/NOTIFY/ORCPT, AUTH=),
 * AUTH exchanges with good and garbage SASL, MIME bodies with NUL, 8-bit, bare CR/LF and dot lines, BDAT
 * chunks, pipelined floods, lines up to 10 MB, raw bytes, PROXY v1 headers (good, truncated, garbage) and
 * garbage where a TLS handshake belongs.
 *
 * Text is latin1 (one char = one byte), so any byte value can be written and a counterexample still prints.
 */
import fc from 'fast-check';

/** Bytes to write: `head`, then `fill` repeated `count` times (big inputs stay small to print), then `tail`. */
export interface Step {
  head: string;
  fill?: { unit: string; count: number };
  tail?: string;
  /** The generator expects the server to answer this step (a command line, the end of DATA). */
  awaitReply: boolean;
}

export type Transport = 'plain' | 'starttls' | 'smtps' | 'proxy';

export interface FuzzCase {
  transport: Transport;
  /** plain and starttls: which listener (relay = port 25 rules, submission = AUTH required). */
  listener: 'mx' | 'submission';
  /** proxy: the header written first (a good, truncated or garbage PROXY v1 line). */
  proxyHeader?: string;
  /** starttls / smtps: bytes written instead of a TLS ClientHello. */
  tlsGarbage?: string;
  /** All steps in one write (a pipelining flood) instead of one step per reply. */
  pipelined: boolean;
  /** Write before the greeting (smtp-server's early-talker check answers 421). */
  early: boolean;
  steps: Step[];
}

/** The recipients, users and networks the fuzz target is configured with (fuzz-target.ts). */
export const TARGET = {
  hostname: 'mx.fuzz.postern',
  inboundDomain: 'ours.example',
  /** Listed recipients of the inbound domain; others get 550 5.1.1. */
  recipients: ['alice', 'team-*'],
  postmaster: 'postmaster@mx.fuzz.postern',
  user: 'app',
  password: 's3cret',
  /** Clients in this network may relay (reachable only through a PROXY header claiming such an address). */
  relayNetwork: '192.0.2.0/24',
} as const;

const cmd = (line: string): Step => ({ head: `${line}\r\n`, awaitReply: true });
const raw = (head: string, awaitReply = false): Step => ({ head, awaitReply });
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

/** One byte of anything, weighted towards the bytes parsers trip over. */
const hostileByte = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('\0', '\r', '\n', '\x7f', '\xff', '\x80', '\t', ' ', '.', ':', '<', '>'),
  },
  { weight: 3, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const hostileText = (maxLength: number) => fc.string({ unit: hostileByte, maxLength });
/** UTF-8 text as latin1 bytes (what a client sends under SMTPUTF8). */
const utf8 = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 12 })
  .map((s) => Buffer.from(s, 'utf8').toString('latin1'));
const atom = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}$/);

const localPart = fc.oneof(
  fc.constantFrom('alice', 'ALICE', 'team-x', 'postmaster', 'bob', 'root', ''),
  atom,
  fc.tuple(atom, atom).map(([a, b]) => `${a}.${b}`),
  atom.map((a) => `.${a}..${a}.`),
  fc.tuple(atom, hostileText(8)).map(([a, t]) => `"${a}\\"${t} @x"`),
  atom.map((a) => `${a}%far.example`),
  atom.map((a) => `far.example!${a}`),
  utf8,
  fc.integer({ min: 60, max: 300 }).map((n) => 'l'.repeat(n)),
);
const domainPart = fc.oneof(
  fc.constantFrom('ours.example', 'OURS.example', 'ours.example.', 'far.example', 'mx.fuzz.postern'),
  fc.domain(),
  fc.ipV4().map((ip) => `[${ip}]`),
  fc.ipV6().map((ip) => `[IPv6:${ip}]`),
  fc.constantFrom('a..b', '-a.example', 'a-.example', '', '.', '[', '[]', '1.2.3.4', 'localhost'),
  utf8.map((u) => `${u}.example`),
  fc.integer({ min: 64, max: 400 }).map((n) => `${'d'.repeat(n)}.example`),
);
const address = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(localPart, domainPart).map(([l, d]) => `${l}@${d}`) },
  { weight: 1, arbitrary: fc.constantFrom('', 'postmaster', 'Postmaster', 'alice', '@', '@@') },
  {
    weight: 1,
    arbitrary: fc.tuple(domainPart, localPart).map(([d, l]) => `@${d},@relay.example:${l}@ours.example`),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(localPart, hostileText(6), domainPart).map(([l, t, d]) => `${l}${t}@${d}`),
  },
);
/** The bracketed path, well- and badly formed. */
const path = fc.oneof(
  { weight: 6, arbitrary: address.map((a) => `<${a}>`) },
  { weight: 1, arbitrary: address },
  { weight: 1, arbitrary: address.map((a) => `<${a}`) },
  { weight: 1, arbitrary: address.map((a) => `<<${a}>>`) },
  { weight: 1, arbitrary: address.map((a) => ` <${a}> `) },
  { weight: 1, arbitrary: address.map((a) => `<"${a}">`) },
);
const xtext = fc.oneof(
  atom,
  atom.map((a) => `${a}+2B${a}`),
  atom.map((a) => `${a}+ZZ+`),
  hostileText(10),
);
const esmtpParam = fc.oneof(
  fc
    .oneof(fc.nat().map(String), fc.constantFrom('99999999999999999999', '-1', '1e9', 'abc', '', '0x10'))
    .map((v) => `SIZE=${v}`),
  fc.constantFrom('7BIT', '8BITMIME', 'BINARYMIME', '8bitmime', 'x', '').map((v) => `BODY=${v}`),
  fc.constantFrom('SMTPUTF8', 'SMTPUTF8=yes', 'smtputf8'),
  fc.constantFrom('FULL', 'HDRS', 'x', '').map((v) => `RET=${v}`),
  xtext.map((v) => `ENVID=${v}`),
  fc.constantFrom('NEVER', 'SUCCESS,FAILURE', 'DELAY', 'NEVER,SUCCESS', 'x', '').map((v) => `NOTIFY=${v}`),
  fc
    .oneof(
      address.map((a) => `rfc822;${a}`),
      xtext,
    )
    .map((v) => `ORCPT=${v}`),
  fc.oneof(fc.constant('<>'), address).map((v) => `AUTH=${v}`),
  fc.tuple(atom, hostileText(10)).map(([k, v]) => `${k}=${v}`),
);
const params = fc.array(esmtpParam, { maxLength: 4 }).map((ps) => ps.map((p) => ` ${p}`).join(''));
const verb = (name: string) =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(name) }, fc.mixedCase(fc.constant(name)));

const mailFrom = fc
  .tuple(verb('MAIL'), fc.constantFrom(' FROM:', ' FROM: ', ' from:', ' FROM', ' TO:', 'FROM:'), path, params)
  .map(([v, f, p, ps]) => cmd(`${v}${f}${p}${ps}`));
const rcptTo = fc
  .tuple(verb('RCPT'), fc.constantFrom(' TO:', ' TO: ', ' to:', ' TO', ' FROM:'), path, params)
  .map(([v, t, p, ps]) => cmd(`${v}${t}${p}${ps}`));
const helo = fc
  .tuple(
    fc.constantFrom('EHLO', 'HELO', 'ehlo', 'LHLO'),
    fc.oneof(domainPart, hostileText(20), fc.constant('')),
  )
  .map(([v, h]) => cmd(h ? `${v} ${h}` : v));

/** A MIME-ish message: headers, maybe multipart with (un)closed boundaries, hostile lines; dot-stuffed or not. */
const body = fc
  .tuple(
    fc.array(
      fc.tuple(
        fc.constantFrom('Subject', 'From', 'To', 'X-Fuzz', 'Content-Type', 'Received', 'Bad Header'),
        hostileText(30),
      ),
      { maxLength: 6 },
    ),
    fc.option(fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,70}$/), { nil: undefined }),
    fc.array(
      fc.oneof(
        fc.string({ maxLength: 80 }),
        hostileText(80),
        fc.constantFrom('.', '..', '. ', '.\n.', '\r.\r', '\n.\n', 'begin 644 x', '=?utf-8?B?w6k=?='),
        fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('base64')),
      ),
      { maxLength: 12 },
    ),
    fc.boolean(),
  )
  .map(([headers, boundary, lines, closeParts]) => {
    const head = headers.map(([k, v]) => `${k}: ${v}`);
    if (boundary) head.push(`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0');
    const parts = boundary
      ? [
          `--${boundary}`,
          'Content-Type: text/plain; charset=utf-8',
          '',
          ...lines,
          `--${boundary}${closeParts ? '--' : ''}`,
        ]
      : lines;
    return `${[...head, '', ...parts].join('\r\n')}\r\n`;
  });
const data = fc
  .tuple(verb('DATA'), body, fc.constantFrom('\r\n.\r\n', '.\r\n', '\n.\n', '\r\n.\n', '\r\n.\r\n'))
  .map(([v, b, end]): Step[] => [cmd(v), raw(b), raw(end.startsWith('\r\n') ? end.slice(2) : end, true)]);

/** BDAT (RFC 3030): the ingress does not offer CHUNKING, so this must be refused without desynchronising. */
const bdat = fc
  .tuple(fc.nat({ max: 200 }), fc.integer({ min: -5, max: 5 }), fc.boolean(), hostileText(200))
  .map(([n, skew, last, chunk]): Step[] => [
    raw(`BDAT ${n}${last ? ' LAST' : ''}\r\n`, true),
    raw(chunk.slice(0, Math.max(0, n + skew)).padEnd(Math.max(0, n + skew), 'x')),
  ]);

const auth = fc.oneof(
  fc.constant([cmd(`AUTH PLAIN ${b64(`\0${TARGET.user}\0${TARGET.password}`)}`)]),
  fc.tuple(hostileText(20), hostileText(20)).map(([u, p]) => [cmd(`AUTH PLAIN ${b64(`\0${u}\0${p}`)}`)]),
  hostileText(40).map((t) => [cmd(`AUTH PLAIN ${t}`)]),
  fc.constant([cmd('AUTH PLAIN'), cmd('*')]),
  fc.constant([cmd('AUTH PLAIN ='), cmd('AUTH')]),
  fc.tuple(hostileText(20), hostileText(20)).map(([u, p]) => [cmd('AUTH LOGIN'), cmd(b64(u)), cmd(b64(p))]),
  fc.constant([cmd('AUTH LOGIN'), cmd(b64(TARGET.user)), cmd(b64(TARGET.password))]),
  fc
    .tuple(fc.constantFrom('CRAM-MD5', 'XOAUTH2', 'GSSAPI', 'plain', ''), hostileText(30))
    .map(([m, t]) => [cmd(`AUTH ${m} ${t}`)]),
);

const misc = fc.oneof(
  fc
    .constantFrom('NOOP', 'RSET', 'QUIT', 'HELP', 'VRFY alice', 'EXPN staff', 'ETRN ours.example', 'STARTTLS')
    .map(cmd),
  fc
    .tuple(
      fc.constantFrom(
        'NOOP',
        'RSET',
        'VRFY',
        'EXPN',
        'HELP',
        'STARTTLS',
        'XCLIENT',
        'XFORWARD',
        'TURN',
        'DEBUG',
        'WIZ',
        'KILL',
      ),
      hostileText(30),
    )
    .map(([v, a]) => cmd(`${v} ${a}`)),
  fc
    .constantFrom('GET / HTTP/1.1', 'POST /x HTTP/1.0', 'XCLIENT ADDR=192.0.2.1', 'XFORWARD ADDR=192.0.2.1')
    .map(cmd),
  hostileText(60).map((t) => raw(`${t}\r\n`, true)),
  hostileText(40).map((t) => raw(`${t}\n`, true)),
  hostileText(40).map((t) => raw(`${t}\r`)),
  fc.constant(raw('\r\n', true)),
);

/** A well-formed transaction, so the acceptance oracle has accepted mail to judge. */
const validTransaction = fc
  .tuple(
    fc.constantFrom('sender@far.example', '', 'x@ours.example'),
    fc.constantFrom(
      'alice@ours.example',
      'team-x@ours.example',
      'postmaster',
      'someone@far.example',
      'bob@ours.example',
    ),
    body,
  )
  .map(([from, to, b]): Step[] => [
    cmd('RSET'),
    cmd(`MAIL FROM:<${from}>`),
    cmd(`RCPT TO:<${to}>`),
    cmd('DATA'),
    raw(b),
    raw('.\r\n', true),
  ]);

/** Many commands in one write (RFC 2920 permits pipelining; a client may abuse it). */
const flood = fc
  .tuple(
    fc.constantFrom('NOOP', 'RSET', 'RCPT TO:<alice@ours.example>', 'MAIL FROM:<a@b.example>', 'HELP', 'X'),
    fc.integer({ min: 20, max: 3000 }),
  )
  .map(([line, count]): Step[] => [{ head: '', fill: { unit: `${line}\r\n`, count }, awaitReply: true }]);

/** Lines far above every limit: a command, a DATA line, no line ending at all. */
export const hugeLine = fc
  .tuple(
    fc.integer({ min: 64 * 1024, max: 10 * 1024 * 1024 }),
    fc.constantFrom('A', 'x\0', '\xff'),
    fc.constantFrom('', 'NOOP ', 'MAIL FROM:<'),
  )
  .map(([n, unit, head]): Step[] => [
    { head, fill: { unit, count: Math.floor(n / unit.length) }, tail: '\r\n', awaitReply: true },
  ]);

const steps = (huge: boolean): fc.Arbitrary<Step[]> =>
  fc.oneof(
    ...(huge ? [{ weight: 1, arbitrary: hugeLine }] : []),
    { weight: 3, arbitrary: helo.map((s) => [s]) },
    { weight: 4, arbitrary: mailFrom.map((s) => [s]) },
    { weight: 4, arbitrary: rcptTo.map((s) => [s]) },
    { weight: 2, arbitrary: data },
    { weight: 4, arbitrary: validTransaction },
    { weight: 1, arbitrary: bdat },
    { weight: 2, arbitrary: auth.map((a) => [...a]) },
    { weight: 3, arbitrary: misc.map((s) => [s]) },
    { weight: 1, arbitrary: flood },
  );

/** A structurally valid session whose envelopes are fuzzed: the acceptance oracle's main source of mail. */
const transactions: fc.Arbitrary<Step[]> = fc
  .tuple(
    fc.option(auth, { nil: undefined }),
    fc.array(
      fc.tuple(
        fc.oneof(
          mailFrom,
          params.map((p) => cmd(`MAIL FROM:<sender@far.example>${p}`)),
          fc.constant(cmd('MAIL FROM:<>')),
        ),
        fc.array(
          fc.oneof(
            rcptTo,
            rcptTo.map(() => cmd('RCPT TO:<alice@ours.example>')),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        body,
      ),
      {
        minLength: 1,
        maxLength: 4,
      },
    ),
  )
  .map(([a, txs]) => [
    ...(a ?? []),
    ...txs.flatMap(([m, rs, b]) => [cmd('RSET'), m, ...rs, cmd('DATA'), raw(b), raw('.\r\n', true)]),
  ]);

/** A PROXY v2 header (HAProxy proxy-protocol.txt §2.2) from its fields; lengths and versions may lie. */
export function proxyV2(o: {
  cmd: number;
  fam: number;
  src: readonly number[];
  sport: number;
  tlv: string;
  lenSkew: number;
  cut: number;
}): string {
  const body = Buffer.concat([
    Buffer.from([...o.src, 198, 51, 100, 1]),
    Buffer.from([o.sport >> 8, o.sport & 0xff, 0, 25]),
    Buffer.from(o.tlv, 'latin1'),
  ]);
  const len = Math.max(0, Math.min(0xffff, body.length + o.lenSkew));
  const header = Buffer.concat([
    Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'),
    Buffer.from([o.cmd, o.fam, len >> 8, len & 0xff]),
    body,
  ]);
  return header.subarray(0, Math.max(0, header.length - o.cut)).toString('latin1');
}

const proxyV2Header = fc
  .record({
    cmd: fc.constantFrom(0x21, 0x21, 0x20, 0x22, 0x11),
    fam: fc.constantFrom(0x11, 0x11, 0x21, 0x31, 0x00, 0x12),
    src: fc.constantFrom([192, 0, 2, 7], [203, 0, 113, 9], [127, 0, 0, 1]),
    sport: fc.nat({ max: 65535 }),
    // TLVs: none, a well-formed unique-id (0x05), one whose length overruns, garbage.
    tlv: fc.constantFrom('', '\x05\x00\x04abcd', '\x05\x00\xffab', '\x20\x00\x01'),
    lenSkew: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -8, max: 8 }), fc.constant(60000)),
    cut: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 20 })),
  })
  .map(proxyV2);

const proxyHeader = fc.oneof(
  { weight: 3, arbitrary: proxyV2Header },
  fc
    .tuple(fc.constantFrom('192.0.2.7', '203.0.113.9', '127.0.0.1'), fc.nat({ max: 65535 }))
    .map(([ip, port]) => `PROXY TCP4 ${ip} 198.51.100.1 ${port} 25\r\n`),
  fc.constant('PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\r\n'),
  fc.constant('PROXY UNKNOWN\r\n'),
  fc.integer({ min: 0, max: 40 }).map((n) => 'PROXY TCP4 192.0.2.7 198.51.100.1 4000 25\r\n'.slice(0, n)),
  fc.constantFrom(
    'PROXY TCP4 999.0.2.7 198.51.100.1 1 25\r\n',
    'PROXY TCP4 192.0.2.7\r\n',
    'PROXY\r\n',
    'EHLO x\r\n',
  ),
  hostileText(120).map((t) => `PROXY ${t}\r\n`),
  fc.constant(`PROXY TCP4 ${'9'.repeat(2000)}\r\n`),
);

const tlsGarbage = fc.oneof(
  hostileText(300),
  fc.constant('\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03'), // a ClientHello cut short
  fc.constant('\x16\x03\x01\xff\xff'), // a record header announcing 64 KB that never comes
  fc.constant('EHLO plain.text\r\n'),
);

/** Generated sessions; `huge` adds lines of up to 10 MB (slow: the bench run uses it, the suite does not). */
export const fuzzCases = (opts: { huge?: boolean } = {}): fc.Arbitrary<FuzzCase> =>
  fc
    .record({
      transport: fc.constantFrom<Transport>('plain', 'plain', 'plain', 'starttls', 'smtps', 'proxy'),
      listener: fc.constantFrom<'mx' | 'submission'>('mx', 'mx', 'submission'),
      greet: fc.integer({ min: 0, max: 6 }).map((n) => n > 0),
      pipelined: fc.boolean(),
      early: fc.integer({ min: 0, max: 11 }).map((n) => n === 0),
      steps: fc.oneof(
        fc.array(steps(opts.huge === true), { minLength: 1, maxLength: 14 }).map((ss) => ss.flat()),
        transactions,
      ),
      proxyHeader,
      tlsGarbage: fc.option(tlsGarbage, { freq: 6, nil: undefined }),
    })
    .map(({ transport, listener, greet, pipelined, early, steps, proxyHeader, tlsGarbage }) => ({
      transport,
      listener,
      pipelined,
      early,
      steps: [...(greet ? [cmd('EHLO fuzz.client')] : []), ...steps],
      ...(transport === 'proxy' ? { proxyHeader } : {}),
      ...((transport === 'starttls' || transport === 'smtps') && tlsGarbage !== undefined
        ? { tlsGarbage }
        : {}),
    }));

export const fuzzCase = fuzzCases();

/** The bytes of one step. */
export function stepBytes(s: Step): Buffer {
  const parts = [Buffer.from(s.head, 'latin1')];
  if (s.fill) parts.push(Buffer.from(s.fill.unit.repeat(s.fill.count), 'latin1'));
  if (s.tail) parts.push(Buffer.from(s.tail, 'latin1'));
  return Buffer.concat(parts);
}
