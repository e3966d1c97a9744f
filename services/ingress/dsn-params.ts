/**
 * RFC 3461 DSN parameters at ingress: the syntax check of RET/ENVID (MAIL) and NOTIFY/ORCPT (RCPT) on the raw
 * command line, and the parameters of an accepted transaction as the Envelope carries them.
 *
 * Why the raw line: smtp-server xtext-decodes every parameter value before the handlers see it, so a value that
 * is not xtext at all (a bare "+", "=", a non-ASCII byte) can no longer be told from a valid encoding. It checks
 * NOTIFY's values and ORCPT's `type;` prefix itself; the rest of §4 is checked here, with one reply.
 */
import type { DsnNotify, DsnParams, RecipientDsn } from '../common/types.ts';
import { decodeXtext, isXtext } from '../common/xtext.ts';
import type { SmtpReply } from './replies.ts';

/** The parameter a command got wrong and why (the reply names both). */
export interface DsnSyntaxError {
  param: 'RET' | 'ENVID' | 'NOTIFY' | 'ORCPT';
  why: string;
}

const NOTIFY_VALUES = new Set(['SUCCESS', 'FAILURE', 'DELAY', 'NEVER']);
/** RFC 3461 §4.4: ENVID is at most 100 characters; §4.2: ORCPT at most 500. */
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** RFC 5322 atom (RFC 3461 §4.2 addr-type). */
const ADDR_TYPE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/;
/** RFC 6533 §3 utf-8-addr-xtext / utf-8-addr-unitext: QCHAR, `\x{HEX}` or (with SMTPUTF8) raw non-ASCII. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the range excludes ASCII, it matches no control character
const UTF8_ADDR = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]|\\x\{[0-9A-F]{2,6}\}|[^\x00-\x7f])+$/u;

function checkNotify(value: string): string | undefined {
  const values = value.toUpperCase().split(',');
  if (values.some((v) => !NOTIFY_VALUES.has(v))) return 'must be NEVER or a list of SUCCESS, FAILURE, DELAY';
  if (values.includes('NEVER') && values.length > 1) return 'NEVER cannot be combined with other values';
  if (new Set(values).size !== values.length) return 'a value is repeated';
  return undefined;
}

function checkOrcpt(value: string): string | undefined {
  if (value.length > MAX_ORCPT) return `longer than ${MAX_ORCPT} characters`;
  const semi = value.indexOf(';');
  const type = value.slice(0, semi);
  const address = value.slice(semi + 1);
  if (semi <= 0 || !ADDR_TYPE.test(type) || address === '') return 'must be addr-type;address';
  if (type.toLowerCase() === 'utf-8') return UTF8_ADDR.test(address) ? undefined : 'bad utf-8-addr-xtext';
  return isXtext(address) ? undefined : 'the address is not xtext';
}

function checkEnvid(value: string): string | undefined {
  if (!isXtext(value) || value === '') return 'not xtext';
  const decoded = decodeXtext(value);
  if (decoded.length > MAX_ENVID) return `longer than ${MAX_ENVID} characters`;
  // RFC 3461 §4.4: printable US-ASCII once decoded.
  return /^[\x20-\x7e]+$/.test(decoded) ? undefined : 'not printable US-ASCII';
}

/** The parameters of a MAIL FROM / RCPT TO line (after the path), as KEY → raw value. */
function parameters(line: string): [string, string | undefined][] {
  const afterColon = line.slice(line.indexOf(':') + 1).trim();
  return afterColon
    .split(/\s+/)
    .slice(1)
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [p.toUpperCase(), undefined] : [p.slice(0, eq).toUpperCase(), p.slice(eq + 1)];
    });
}

/** Checks the DSN parameters of one raw MAIL or RCPT command line (RFC 3461 §4). */
export function checkDsnParameters(verb: 'MAIL' | 'RCPT', line: string): DsnSyntaxError | undefined {
  const checks: Record<string, (v: string) => string | undefined> =
    verb === 'MAIL'
      ? { RET: (v) => (/^(FULL|HDRS)$/i.test(v) ? undefined : 'must be FULL or HDRS'), ENVID: checkEnvid }
      : { NOTIFY: checkNotify, ORCPT: checkOrcpt };
  for (const [key, value] of parameters(line)) {
    const check = checks[key];
    if (!check) continue;
    const why = value === undefined || value === '' ? 'needs a value' : check(value);
    if (why) return { param: key as DsnSyntaxError['param'], why };
  }
  return undefined;
}

/** RFC 3461 §4 + RFC 3463 §3.6: 501 5.5.4 syntax error in parameters. */
export function dsnSyntaxReply(e: DsnSyntaxError): SmtpReply {
  return { code: 501, enhanced: '5.5.4', text: `Bad ${e.param} parameter syntax (${e.why})` };
}

/** What smtp-server keeps of the DSN parameters (hideDSN: false), values xtext-decoded. */
export interface ServerEnvelopeDsn {
  dsn?: { ret?: string | null; envid?: string | null } | undefined;
  rcptTo: { address: string; dsn?: { notify?: string[]; orcpt?: string } | undefined }[];
}

/** The Envelope's `dsn`: undefined when the client gave no DSN parameter at all. */
export function envelopeDsn(envelope: ServerEnvelopeDsn): DsnParams | undefined {
  const recipients: Record<string, RecipientDsn> = {};
  for (const r of envelope.rcptTo) {
    const notify = r.dsn?.notify?.map((n) => n.toUpperCase() as DsnNotify);
    const orcpt = r.dsn?.orcpt;
    if (notify?.length || orcpt) {
      recipients[r.address] = { ...(notify?.length ? { notify } : {}), ...(orcpt ? { orcpt } : {}) };
    }
  }
  const ret = envelope.dsn?.ret?.toUpperCase();
  const envid = envelope.dsn?.envid;
  const dsn: DsnParams = {
    ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}),
    ...(envid ? { envid } : {}),
    ...(Object.keys(recipients).length > 0 ? { recipients } : {}),
  };
  return Object.keys(dsn).length > 0 ? dsn : undefined;
}
