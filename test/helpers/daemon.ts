/**
 * Test helper: a foreground daemon (dnsmasq, unbound, …) as a child process that owns a scratch directory:
 * its stderr kept for failure messages, and a close() that stops it (SIGTERM, then SIGKILL after 5 s) and removes
 * the directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Daemon {
  child: ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  exited(): boolean;
  close(): Promise<void>;
}

export function startDaemon(cmd: string, args: string[], dir: string): Daemon {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  return {
    child,
    stderr: () => stderr,
    exited: () => exited,
    async close() {
      if (!exited) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(5000, undefined, { ref: false })]);
        if (!exited) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
