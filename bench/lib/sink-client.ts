/** Starts bench/sink.ts as a child process and talks to it over IPC. */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';

/** Counters the sink keeps since the last reset. */
export interface SinkCounts {
  received: number;
  duplicates: number;
  tempfailed: number;
  rejected: number;
}

/** Counters plus per-recipient arrival times (epoch ms) and end-to-end latencies (ms). */
export interface SinkSnapshot extends SinkCounts {
  arrivals: number[];
  e2e: number[];
}

export interface Sink {
  pid: number;
  reset(): Promise<SinkCounts>;
  count(): Promise<SinkCounts>;
  snapshot(): Promise<SinkSnapshot>;
  /** Polls until `received >= n` or the deadline passes; returns the last counts. */
  waitFor(n: number, deadlineMs: number, stallMs?: number): Promise<SinkCounts>;
  stop(): Promise<void>;
}

/** Listener spec: host (127.x), port, and what the sink answers. */
export interface SinkListen {
  host: string;
  port: number;
  mode: 'accept' | 'tempfail' | 'reject';
}

export async function startSink(listen: SinkListen[]): Promise<Sink> {
  const args = listen.flatMap((l) => ['--listen', `${l.host}:${l.port}:${l.mode}`]);
  const child: ChildProcess = fork(join(import.meta.dirname, '..', 'sink.ts'), args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const queue: Array<(m: unknown) => void> = [];
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`sink exited (${code}) before ready`)));
    child.once('message', () => resolve());
  });
  child.on('message', (m) => queue.shift()?.(m));
  const ask = <T>(cmd: string) =>
    new Promise<T>((resolve) => {
      queue.push(resolve as (m: unknown) => void);
      child.send({ cmd });
    });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pid: child.pid!,
    reset: () => ask<SinkCounts>('reset'),
    count: () => ask<SinkCounts>('count'),
    snapshot: () => ask<SinkSnapshot>('snapshot'),
    async waitFor(n, deadlineMs, stallMs = 30_000) {
      const until = Date.now() + deadlineMs;
      let last = await ask<SinkCounts>('count');
      let lastChange = Date.now();
      // Bounded: ends at the deadline, or when nothing arrived for `stallMs`.
      while (last.received < n && Date.now() < until && Date.now() - lastChange < stallMs) {
        await new Promise((r) => setTimeout(r, 100));
        const c = await ask<SinkCounts>('count');
        if (c.received !== last.received) lastChange = Date.now();
        last = c;
      }
      return last;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.disconnect();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
