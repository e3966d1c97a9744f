/**
 * The SMTP reply oracle of the fuzzer: everything the ingress wrote on one connection, checked line by line
 * against RFC 5321 §4.2 (reply syntax) and RFC 2034 §3 (enhanced status codes once ENHANCEDSTATUSCODES was
 * advertised). Pure: it judges a transcript, it does not talk to anyone.
 */

export interface Reply {
  code: number;
  /** Text of each line after the code and its separator. */
  lines: string[];
}

export interface ReplyCheck {
  replies: Reply[];
  /** What is wrong, one sentence per violation (empty = every byte was a valid reply). */
  violations: string[];
}

/** RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF. */
const REPLY_LINE = /^([2-5][0-5]\d)(?:([ -])(.*))?$/s;
/** RFC 5321 §4.1.1: textstring = 1*(%d09 / %d32-126); SMTPUTF8 (RFC 6531) does not widen server reply text. */
const TEXTSTRING = /^[\t\x20-\x7e]*$/;
/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the CRLF. */
const MAX_REPLY_LINE = 512;
/** RFC 3463 §2: class "." subject "." detail, class matching the reply's first digit. */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/**
 * Replies RFC 2034 §3 exempts from the enhanced code: "the initial greeting and any response to HELO or EHLO".
 * Recognised by their text because a pipelined transcript does not say which command a reply answers: the
 * HELO/EHLO greeting line starts with our host name; the syntax errors are smtp-server's fixed texts for them.
 */
function exempt(reply: Reply, hostname: string, first: boolean): boolean {
  const text = reply.lines[0] ?? '';
  if (first && reply.code === 220) return true;
  if (reply.code === 250 && (text === hostname || text.startsWith(`${hostname} `))) return true;
  return (
    reply.code === 501 &&
    /^Error: (syntax: EHLO hostname|Syntax: HELO hostname|Bad hostname syntax)$/.test(text)
  );
}

/**
 * Splits a transcript into replies and lists every violation. `complete` says the connection ended (a
 * trailing partial line is then a truncated reply). `hostname` is the server's announced name.
 */
export function checkReplies(transcript: Buffer, opts: { hostname: string; complete: boolean }): ReplyCheck {
  const violations: string[] = [];
  const replies: Reply[] = [];
  const text = transcript.toString('latin1');
  const parts = text.split('\r\n');
  const tail = parts.pop() ?? '';
  if (tail !== '' && opts.complete) violations.push(`truncated reply line at close: ${show(tail)}`);
  let pending: Reply | undefined;
  let enhancedAdvertised = false;
  for (const line of parts) {
    const m = REPLY_LINE.exec(line);
    if (!m) {
      violations.push(`not a reply line: ${show(line)}`);
      pending = undefined;
      continue;
    }
    if (line.length + 2 > MAX_REPLY_LINE)
      violations.push(`reply line longer than 512 octets: ${line.length + 2}`);
    const body = m[3] ?? '';
    if (!TEXTSTRING.test(body)) violations.push(`reply text outside RFC 5321 textstring: ${show(line)}`);
    const code = Number(m[1]);
    if (pending && pending.code !== code) {
      violations.push(`multiline reply changes code ${pending.code} → ${code}: ${show(line)}`);
      pending = undefined;
    }
    pending ??= { code, lines: [] };
    pending.lines.push(body);
    if (m[2] === '-') continue;
    replies.push(pending);
    if (pending.code === 250 && pending.lines.some((l) => /^ENHANCEDSTATUSCODES$/i.test(l)))
      enhancedAdvertised = true;
    else if (enhancedAdvertised && Math.floor(pending.code / 100) !== 3) {
      // 2xx, 4xx, 5xx carry the code on every line (RFC 2034 §3); 3xx never need one.
      checkEnhanced(pending, replies.length === 1, opts.hostname, violations);
    }
    pending = undefined;
  }
  if (pending) violations.push(`multiline reply without its last line: ${show(pending.lines.join(' | '))}`);
  return { replies, violations };
}

function checkEnhanced(reply: Reply, first: boolean, hostname: string, violations: string[]): void {
  if (exempt(reply, hostname, first)) return;
  for (const line of reply.lines) {
    const e = ENHANCED.exec(line);
    if (!e) {
      violations.push(`${reply.code} reply without an enhanced status code: ${show(line)}`);
      return;
    }
    if (Number(e[1]) !== Math.floor(reply.code / 100)) {
      violations.push(`enhanced code class differs from ${reply.code}: ${show(line)}`);
      return;
    }
  }
}

const show = (s: string) => JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…` : s);
