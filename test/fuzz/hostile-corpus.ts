/**
 * Fixed hostile sessions every fuzz run starts with: the inputs issue #11 names, written out so each is tried
 * every time (random generation may take long to hit a 10 MB line or a PROXY header cut in half), plus the
 * regression cases of what the fuzzer found (docs/reliability.md).
 */
import { type FuzzCase, proxyV2, type Step } from './smtp-grammar.ts';

const cmd = (line: string): Step => ({ head: `${line}\r\n`, awaitReply: true });
const raw = (head: string, awaitReply = false): Step => ({ head, awaitReply });
const MB10 = 10 * 1024 * 1024;
const ehlo = cmd('EHLO corpus.client');
const plain = (steps: Step[], extra: Partial<FuzzCase> = {}): FuzzCase => ({
  transport: 'plain',
  listener: 'mx',
  pipelined: false,
  early: false,
  steps,
  ...extra,
});
const toAlice = [cmd('MAIL FROM:<sender@far.example>'), cmd('RCPT TO:<alice@ours.example>'), cmd('DATA')];

export const HOSTILE_CORPUS: Record<string, FuzzCase> = {
  'a 10 MB command line': plain([
    ehlo,
    { head: 'NOOP ', fill: { unit: 'A', count: MB10 }, tail: '\r\n', awaitReply: true },
  ]),
  'a 10 MB line without any line ending': plain([
    ehlo,
    { head: '', fill: { unit: 'x', count: MB10 }, awaitReply: false },
  ]),
  'a 10 MB line inside DATA': plain([
    ehlo,
    ...toAlice,
    { head: 'Subject: big\r\n\r\n', fill: { unit: 'B', count: MB10 }, tail: '\r\n', awaitReply: false },
    raw('.\r\n', true),
  ]),
  'NUL and 8-bit bytes in commands and DATA': plain([
    cmd('EHLO \0\xff\x80'),
    cmd('MAIL FROM:<a\0b@far.example>'),
    cmd('MAIL FROM:<s\xe9nder@far.example> SMTPUTF8'),
    cmd('RCPT TO:<al\0ice@ours.example>'),
    cmd('RCPT TO:<alice@ours.example>'),
    cmd('DATA'),
    raw('Subject: \0\xff\r\n\r\nbody \0 with NUL and \xe9\r\n'),
    raw('.\r\n', true),
  ]),
  'bare LF and bare CR in DATA (smuggling)': plain([
    ehlo,
    ...toAlice,
    raw('Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<x@y.example>\nbare\rcr\r\n'),
    raw('.\r\n', true),
  ]),
  'bare LF line endings on commands': plain([
    raw('EHLO lf.client\n', true),
    raw('MAIL FROM:<a@far.example>\n', true),
    raw('NOOP\r', false),
  ]),
  'a pipelined flood of 5000 RCPT': plain(
    [
      ehlo,
      cmd('MAIL FROM:<sender@far.example>'),
      { head: '', fill: { unit: 'RCPT TO:<alice@ours.example>\r\n', count: 5000 }, awaitReply: true },
    ],
    { pipelined: true },
  ),
  'a pipelined flood of 20000 NOOP before the greeting': plain(
    [{ head: '', fill: { unit: 'NOOP\r\n', count: 20_000 }, awaitReply: true }],
    {
      pipelined: true,
      early: true,
    },
  ),
  'a pipelined flood of 30000 RCPT and DATA': plain(
    [
      ehlo,
      cmd('MAIL FROM:<sender@far.example>'),
      { head: '', fill: { unit: 'RCPT TO:<alice@ours.example>\r\n', count: 30_000 }, awaitReply: true },
      cmd('DATA'),
      raw('Subject: many\r\n\r\nhello\r\n'),
      raw('.\r\n', true),
    ],
    { pipelined: true },
  ),
  'regression: 1500 distinct recipients in one transaction stop at the limit (fuzz finding 3)': plain(
    [
      ehlo,
      cmd('MAIL FROM:<sender@far.example>'),
      raw(Array.from({ length: 1500 }, (_, i) => `RCPT TO:<team-${i}@ours.example>\r\n`).join(''), true),
    ],
    { pipelined: true },
  ),
  'BDAT chunks (CHUNKING is not offered)': plain([
    ehlo,
    cmd('MAIL FROM:<sender@far.example>'),
    cmd('RCPT TO:<alice@ours.example>'),
    raw('BDAT 12\r\n', true),
    raw('Subject: x\r\n'),
    raw('BDAT 5 LAST\r\n', true),
    raw('abcde'),
    raw('BDAT 99999999999999999999 LAST\r\n', true),
  ]),
  'ESMTP parameter garbage': plain([
    ehlo,
    cmd(
      'MAIL FROM:<sender@far.example> SIZE=99999999999999999999 BODY=BINARYMIME SMTPUTF8=x RET=NONE ENVID=+ZZ',
    ),
    cmd('MAIL FROM:<sender@far.example> SIZE=-1'),
    cmd('MAIL FROM:<sender@far.example> SIZE=100 SIZE=200'),
    cmd('MAIL FROM:<sender@far.example> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2Bdef'),
    cmd('RCPT TO:<alice@ours.example> NOTIFY=NEVER,SUCCESS ORCPT=rfc822;x'),
    cmd('RCPT TO:<alice@ours.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@ours.example X-UNKNOWN=1'),
    cmd('RCPT TO:<alice@ours.example> \xff\xfe=1 \xff\xfe=2'),
  ]),
  'address syntax attacks': plain([
    ehlo,
    cmd('MAIL FROM:<@a.example,@b.example:sender@far.example>'),
    cmd('MAIL FROM:<"quoted@inside"@far.example>'),
    cmd('MAIL FROM:sender@far.example'),
    cmd('MAIL FROM:<sender@far.example>'),
    cmd('RCPT TO:<victim%far.example@ours.example>'),
    cmd('RCPT TO:<far.example!victim@ours.example>'),
    cmd('RCPT TO:<alice@[127.0.0.1]>'),
    cmd('RCPT TO:<alice@ours.example.>'),
    cmd(`RCPT TO:<${'l'.repeat(300)}@ours.example>`),
    cmd('RCPT TO:<victim@far.example>'),
    cmd('RCPT TO:<<alice@ours.example>>'),
  ]),
  'AUTH garbage on the submission listener over STARTTLS': {
    transport: 'starttls',
    listener: 'submission',
    pipelined: false,
    early: false,
    steps: [
      ehlo,
      cmd('AUTH PLAIN !!!notbase64!!!'),
      cmd(`AUTH PLAIN ${'QUFB'.repeat(5000)}`),
      cmd('AUTH LOGIN'),
      cmd('\0\xff'),
      cmd('AUTH LOGIN'),
      cmd('*'),
      cmd('AUTH CRAM-MD5'),
      cmd('AUTH PLAIN ='),
      cmd('AUTH'),
    ],
  },
  'garbage instead of a TLS handshake on the smtps listener': {
    transport: 'smtps',
    listener: 'mx',
    pipelined: false,
    early: false,
    steps: [],
    tlsGarbage: '\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03',
  },
  'plain text instead of TLS after STARTTLS': {
    transport: 'starttls',
    listener: 'mx',
    pipelined: false,
    early: false,
    steps: [],
    tlsGarbage: 'EHLO plain.text\r\nMAIL FROM:<a@b.example>\r\n',
  },
  'a PROXY header cut in half': { ...plain([ehlo]), transport: 'proxy', proxyHeader: 'PROXY TCP4 192.0.2' },
  'a PROXY header with a bad address': {
    ...plain([ehlo]),
    transport: 'proxy',
    proxyHeader: 'PROXY TCP4 999.1.1.1 10.0.0.1 1 25\r\n',
  },
  'a well-formed PROXY header from the relay network relays': {
    ...plain([
      ehlo,
      cmd('MAIL FROM:<sender@far.example>'),
      cmd('RCPT TO:<someone@far.example>'),
      cmd('DATA'),
      raw('Subject: via proxy\r\n\r\nhello\r\n'),
      raw('.\r\n', true),
    ]),
    transport: 'proxy',
    proxyHeader: 'PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n',
  },
  'a PROXY v2 header cut short': {
    ...plain([ehlo]),
    transport: 'proxy',
    proxyHeader: proxyV2({
      cmd: 0x21,
      fam: 0x11,
      src: [192, 0, 2, 7],
      sport: 4000,
      tlv: '',
      lenSkew: 0,
      cut: 5,
    }),
  },
  'a PROXY v2 header announcing 60000 bytes more than it sends': {
    ...plain([ehlo]),
    transport: 'proxy',
    proxyHeader: proxyV2({
      cmd: 0x21,
      fam: 0x11,
      src: [192, 0, 2, 7],
      sport: 4000,
      tlv: '',
      lenSkew: 60000,
      cut: 0,
    }),
  },
  'a well-formed PROXY v2 header from the relay network relays': {
    ...plain([
      ehlo,
      cmd('MAIL FROM:<sender@far.example>'),
      cmd('RCPT TO:<someone@far.example>'),
      cmd('DATA'),
      raw('Subject: via proxy v2\r\n\r\nhello\r\n'),
      raw('.\r\n', true),
    ]),
    transport: 'proxy',
    proxyHeader: proxyV2({
      cmd: 0x21,
      fam: 0x11,
      src: [192, 0, 2, 8],
      sport: 4000,
      tlv: '\x05\x00\x04abcd',
      lenSkew: 0,
      cut: 0,
    }),
  },
  'a valid message to a listed recipient is queued': plain([
    ehlo,
    ...toAlice,
    raw('Subject: hi\r\n\r\nhello\r\n'),
    raw('.\r\n', true),
  ]),
  'regression: an unknown LHLO after EHLO has its enhanced code (fuzz finding 1)': plain([
    ehlo,
    cmd('LHLO x'),
  ]),
  'regression: 8-bit bytes in a parameter name are not echoed (fuzz finding 2)': plain([
    ehlo,
    cmd('MAIL FROM:<a@far.example> \xe9=1 \xe9=2'),
  ]),
};
