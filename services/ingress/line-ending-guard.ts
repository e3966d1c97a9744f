/**
 * SMTP smuggling defence (CVE-2023-51764 family): RFC 5321 §2.3.8 allows only CRLF as a line ending in DATA.
 * A bare LF or bare CR lets a sender hide `<LF>.<LF>` (or `<CR>.<CR>`) end-of-data markers that another hop
 * reads differently and so inject a second, forged message. We refuse any message that contains one.
 * Fed the DATA stream chunk by chunk (it is dot-unstuffed by smtp-server, which does not touch CR/LF).
 */

const CR = 0x0d;
const LF = 0x0a;

export class LineEndingGuard {
  /** The previous chunk ended in CR: the next byte must be LF. */
  #pendingCR = false;
  #bad = false;

  /** Scans one chunk; cheap (indexOf over CR and LF positions only). */
  feed(chunk: Uint8Array): void {
    if (!this.#bad && chunk.length > 0) this.#bad = !this.#scan(chunk);
  }

  /** False at the first bare CR or LF; tracks a CR at the chunk end for the next chunk. */
  #scan(chunk: Uint8Array): boolean {
    if (this.#pendingCR !== (chunk[0] === LF)) return false;
    // Every LF after position 0 must follow a CR.
    for (let i = chunk.indexOf(LF, 1); i !== -1; i = chunk.indexOf(LF, i + 1)) {
      if (chunk[i - 1] !== CR) return false;
    }
    // Every CR must be followed by LF (the last byte may be continued by the next chunk).
    this.#pendingCR = false;
    for (let i = chunk.indexOf(CR); i !== -1; i = chunk.indexOf(CR, i + 1)) {
      if (i === chunk.length - 1) this.#pendingCR = true;
      else if (chunk[i + 1] !== LF) return false;
    }
    return true;
  }

  /** True when everything fed so far used CRLF line endings only (a trailing lone CR counts as bare). */
  clean(): boolean {
    return !this.#bad && !this.#pendingCR;
  }
}
