/**
 * RFC 3461 §4 xtext, the encoding of the DSN parameters ENVID and ORCPT: printable ASCII except "+" and "=" as
 * themselves, anything else as "+" and two upper-case hex digits.
 */

/** RFC 3461 §4: xtext = *( xchar / hexchar ); xchar = "!".."~" except "+" and "="; hexchar = "+" 2HEXDIG. */
const XTEXT = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$/;

export function isXtext(text: string): boolean {
  return XTEXT.test(text);
}

export function decodeXtext(text: string): string {
  return text.replace(/\+([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

export function encodeXtext(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d
        ? String.fromCharCode(byte)
        : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
