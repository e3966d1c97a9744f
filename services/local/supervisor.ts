/**
 * Runs Postern's services as separate child processes on one machine (local mode), the way a cluster runs
 * pods: each is started with its environment, considered up once it prints its `ready` log line, and restarted
 * with backoff if it dies (like a pod's restartPolicy: Always) until the supervisor stops.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';

export interface ChildSpec {
  /** Unique name, e.g. `ingress-0`. */
  name: string;
  /** Script run with this Node binary (e.g. services/ingress/main.ts). */
  script: string;
  env: Record<string, string>;
  /**
   * V8 old-space cap in MiB (`--max-old-space-size`). Without one, V8 sizes the heap from the machine's memory
   * (up to 4 GiB here) and grows it lazily under load: a service holding nothing per queued message still
   * reached ~300 MB RSS with 100k messages deferred (docs/bench.md "Memory"). Message bodies are Buffers,
   * outside the old space, so the cap bounds garbage, never the size of a message.
   */
  heapMiB?: number;
  /**
   * V8 semi-space cap in MiB (`--max-semi-space-size`). Under load V8 grows the young generation to its default
   * ceiling (64–128 MB of committed new space measured, with a live old space of ~20 MB), and the pages it once
   * touched stay resident: the largest part of each service's RSS. Short-lived per-message garbage dies in a few
   * MiB just as well; docs/bench.md "Memory" has the before/after and the throughput check.
   */
  semiSpaceMiB?: number;
}

/** The V8 flags a child runs with (see ChildSpec). */
export function v8Flags(spec: Pick<ChildSpec, 'heapMiB' | 'semiSpaceMiB'>): string[] {
  return [
    ...(spec.heapMiB ? [`--max-old-space-size=${spec.heapMiB}`] : []),
    ...(spec.semiSpaceMiB ? [`--max-semi-space-size=${spec.semiSpaceMiB}`] : []),
  ];
}

export interface RunningChild {
  spec: ChildSpec;
  process: ChildProcess;
  /** Fields of the child's ready log line (addresses it listens on). */
  ready: Record<string, unknown>;
}

/**
 * Emits 'line' (name, line) for each stdout/stderr line, 'exit' (name, code, signal), 'restart' (name).
 * With `passthrough`, a child's output is split into lines only until it is ready; after that its bytes go
 * straight to the passthrough stream (no per-line work in this process on the hot path) and 'line' stops.
 */
export class Supervisor extends EventEmitter {
  readonly children = new Map<string, RunningChild>();
  readonly #passthrough: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } | undefined;
  #stopping = false;
  #restarts = new Map<string, number>();

  constructor(passthrough?: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }) {
    super();
    this.#passthrough = passthrough;
  }

  /** Starts a child and resolves when it reports ready; rejects if it exits first. */
  async start(spec: ChildSpec, readyTimeoutMs = 60_000): Promise<RunningChild> {
    const child = spawn(process.execPath, [...v8Flags(spec), spec.script], {
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const running: RunningChild = { spec, process: child, ready: {} };
    this.children.set(spec.name, running);
    const readyPromise = new Promise<RunningChild>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${spec.name} not ready after ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      );
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`${spec.name} exited (${code ?? signal}) before it was ready`));
      };
      child.once('exit', onExit);
      let isReady = false;
      const onLine = (line: string) => {
        this.emit('line', spec.name, line);
        if (!isReady && line.includes('"msg":"ready"')) {
          isReady = true;
          try {
            running.ready = JSON.parse(line) as Record<string, unknown>;
          } catch {
            // a ready line that is not JSON still counts
          }
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve(running);
        }
      };
      const pass = this.#passthrough;
      for (const [stream, target] of [
        [child.stdout!, pass?.out],
        [child.stderr!, pass?.err],
      ] as const) {
        let pending = '';
        stream.on('data', (chunk: Buffer) => {
          if (isReady && target) {
            if (pending) target.write(`${pending}\n`);
            pending = '';
            target.write(chunk);
            return;
          }
          const lines = (pending + chunk.toString('utf8')).split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) onLine(line);
        });
        stream.on('end', () => pending && onLine(pending));
      }
    });
    child.on('exit', (code, signal) => {
      this.emit('exit', spec.name, code, signal);
      if (this.#stopping || this.children.get(spec.name)?.process !== child) return;
      const n = (this.#restarts.get(spec.name) ?? 0) + 1;
      this.#restarts.set(spec.name, n);
      const delay = Math.min(200 * 2 ** Math.min(n, 6), 10_000);
      setTimeout(() => {
        if (this.#stopping) return;
        this.emit('restart', spec.name);
        this.start(spec).catch((err) =>
          this.emit('line', spec.name, `restart failed: ${(err as Error).message}`),
        );
      }, delay).unref();
    });
    return readyPromise;
  }

  /** Stops every child: SIGTERM, then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      [...this.children.values()].reverse().map(async ({ process: child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }),
    );
  }
}
