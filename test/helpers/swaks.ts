/** Test helper: runs the real swaks SMTP client and returns its transcript. */
import { execFile } from 'node:child_process';

export interface SwaksResult {
  /** swaks exit code: 0 = transaction completed; non-zero names the failing phase. */
  code: number;
  transcript: string;
  /** Server reply lines (`<- `, `<~ ` (TLS), `<** ` (error) prefixed lines), without the prefix. */
  replies: string[];
}

/**
 * Runs swaks with the given arguments (e.g. `['--server', '127.0.0.1:2525', '--to', 'a@b']`) and resolves with its
 * transcript; never rejects on an SMTP failure, so tests assert on replies.
 */
export function swaks(args: string[], timeoutSec = 30): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'swaks',
      ['--timeout', `${timeoutSec}s`, '--hide-informational', ...args],
      { timeout: (timeoutSec + 10) * 1000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        if (typeof code !== 'number') return reject(err);
        const transcript = `${stdout}${stderr}`;
        // A swaks without a capability the test asked for (TLS without Net::SSLeay, …) is a broken set-up, not an
        // SMTP outcome: fail loudly instead of letting the test read it as the server's answer.
        const missing = /\*\*\* (.+ not available: requires .+)/.exec(transcript);
        if (missing) return reject(new Error(`swaks lacks a capability this test needs: ${missing[1]}`));
        const replies = transcript
          .split('\n')
          .filter((l) => /^\s*<(-|~|\*\*)\s/.test(l))
          .map((l) => l.replace(/^\s*<(-|~|\*\*)\s+/, ''));
        resolve({ code, transcript, replies });
      },
    );
  });
}
