/**
 * The Authentication-Results header field (RFC 8601) on the raw message: reading the authserv-id of existing
 * ones, removing those that claim ours (§5: a border MTA MUST delete them, they can only be forged), and
 * composing ours. Pure functions over bytes; the header section is handled as latin1 so no byte changes.
 */

/** Byte offset of the blank line ending the header section (the CRLF CRLF), or -1 when there is no body. */
export function headerEnd(message: Buffer): number {
  if (message.subarray(0, 2).toString('latin1') === '\r\n') return 0;
  return message.indexOf('\r\n\r\n');
}

/** RFC 5322 §3.2.2 CFWS: skips white space and (nested) comments. */
function skipCfws(text: string, at: number): number {
  let i = at;
  for (;;) {
    while (i < text.length && /[ \t\r\n]/.test(text[i] as string)) i++;
    if (text[i] !== '(') return i;
    let depth = 0;
    for (; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '(') depth++;
      else if (text[i] === ')' && --depth === 0) {
        i++;
        break;
      }
    }
  }
}

/** The authserv-id of an Authentication-Results value (RFC 8601 §2.2: a token or a quoted-string). */
export function authservIdOf(value: string): string {
  let i = skipCfws(value, 0);
  if (value[i] === '"') {
    let id = '';
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      id += value[i] ?? '';
    }
    return id;
  }
  const start = i;
  while (i < value.length && !/[ \t\r\n;()"]/.test(value[i] as string)) i++;
  return value.slice(start, i);
}

/** Splits a header section (latin1) into whole fields, each with its folded continuation lines and CRLF. */
export function fields(section: string): string[] {
  const out: string[] = [];
  for (const line of section.split(/(?<=\r\n)/)) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1] += line;
    else out.push(line);
  }
  return out;
}

/**
 * Removes every Authentication-Results field whose authserv-id equals `authservId` (case-insensitive, like host
 * names). Returns the message and how many were removed; a message without a header section is returned as is.
 */
export function removeForgedResults(
  message: Buffer,
  authservId: string,
): { message: Buffer; removed: number } {
  const end = headerEnd(message);
  if (end <= 0) return { message, removed: 0 };
  const section = message.subarray(0, end + 2).toString('latin1');
  const ours = authservId.toLowerCase();
  let removed = 0;
  const kept = fields(section).filter((f) => {
    const m = /^authentication-results[ \t]*:(.*)$/is.exec(f);
    if (m && authservIdOf(m[1] as string).toLowerCase() === ours) {
      removed++;
      return false;
    }
    return true;
  });
  if (removed === 0) return { message, removed };
  return {
    message: Buffer.concat([Buffer.from(kept.join(''), 'latin1'), message.subarray(end + 2)]),
    removed,
  };
}

/** RFC 8601 §2.2: an authserv-id that is not a token travels as a quoted-string. */
export function formatAuthservId(id: string): string {
  return /^[!#-'*+\-.0-9A-Z^-~]+$/.test(id) ? id : `"${id.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Our header field: `Authentication-Results: <authserv-id>;` then one resinfo per line (RFC 8601 §2.2), or
 * `; none` when nothing was checked (§2.2 no-result).
 */
export function authResultsHeader(authservId: string, resinfo: string[]): string {
  const id = formatAuthservId(authservId);
  if (resinfo.length === 0) return `Authentication-Results: ${id}; none\r\n`;
  return `Authentication-Results: ${id};\r\n ${resinfo.join(';\r\n ')}\r\n`;
}
