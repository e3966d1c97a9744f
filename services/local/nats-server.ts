/**
 * Finds (or has scripts/test-bins.sh build) a nats-server ≥ 2.12 and runs it as a child process with
 * JetStream on loopback. Used by local mode and by the test helpers.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MIN_VERSION = [2, 12];

/** nats-server's Go soft memory limit in local mode (GOMEMLIMIT): below the 512 MB DESIGN §9 allows it. */
export const NATS_MEMORY_LIMIT = '384MiB';

/** Path of a nats-server binary whose version is at least 2.12. */
export function findNatsServer(): string {
  const candidates = [process.env['NATS_SERVER_BIN']].filter(Boolean) as string[];
  for (const bin of candidates) if (versionOk(bin)) return bin;
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-bins.sh'), 'nats'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bin = /NATS_SERVER_BIN=(.*)/.exec(out)?.[1]?.trim();
  if (!bin || !versionOk(bin)) throw new Error(`no nats-server >= ${MIN_VERSION.join('.')} available`);
  return bin;
}

function versionOk(bin: string): boolean {
  try {
    const text = execFileSync(bin, ['--version'], { encoding: 'utf8' });
    const [maj = 0, min = 0] = (/v(\d+)\.(\d+)/.exec(text) ?? []).slice(1).map(Number);
    return maj > MIN_VERSION[0]! || (maj === MIN_VERSION[0] && min >= MIN_VERSION[1]!);
  } catch {
    return false;
  }
}

/** JetStream flags; `sync_interval` has no command-line flag, so `always` goes through a config file. */
function jetstreamArgs(storeDir: string, sync: 'always' | 'default'): string[] {
  if (sync === 'default') return ['-js', '-sd', storeDir];
  const conf = join(storeDir, 'postern-jetstream.conf');
  writeFileSync(conf, `jetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n  sync_interval: always\n}\n`);
  return ['-c', conf];
}

export { freePort };

export interface ClusterMember {
  /** Unique server name (JetStream clustering requires one per node). */
  serverName: string;
  clusterName: string;
  /** Route port of this node. */
  clusterPort: number;
  /** Route ports of the other members, on the same host. */
  peers: number[];
}

function clusterArgs(host: string, c: ClusterMember): string[] {
  return [
    '-n',
    c.serverName,
    '--cluster_name',
    c.clusterName,
    '--cluster',
    `nats://${host}:${c.clusterPort}`,
    '--routes',
    c.peers.map((p) => `nats://${host}:${p}`).join(','),
  ];
}

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and resolves when it has exited. */
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream; resolves once it accepts client connections. */
export async function startNatsServer(opts: {
  storeDir: string;
  port?: number;
  host?: string;
  logTo?: 'inherit' | 'ignore';
  /**
   * `always`: JetStream fsyncs every write before acknowledging it (like Postfix's fsync before 250), so an
   * acknowledged message survives a power loss on a single node. Default: nats-server's own (fsync every 2 min;
   * a process crash loses nothing, the page cache survives it; in a cluster, R3 replication covers node loss).
   */
  sync?: 'always' | 'default';
  /** Member of a JetStream cluster (local mode's `--nats-cluster N`): routes to the other members. */
  cluster?: ClusterMember;
}): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const host = opts.host ?? '127.0.0.1';
  // Without a port, let nats-server pick one (-1) and read it from its log: choosing a free port first and
  // binding it later races with other processes' outgoing connections taking that ephemeral port.
  const piped = (opts.logTo ?? 'pipe') === 'pipe';
  let port = opts.port ?? (piped ? -1 : await freePort(host));
  mkdirSync(opts.storeDir, { recursive: true });
  const child = spawn(
    bin,
    [
      '-a',
      host,
      '-p',
      String(port),
      '--http_port',
      '0',
      ...jetstreamArgs(opts.storeDir, opts.sync ?? 'default'),
      ...(opts.cluster ? clusterArgs(host, opts.cluster) : []),
    ],
    {
      // Go's GC lets the heap reach twice the live data (GOGC=100) before collecting. With 100k deferred jobs the
      // live data is the scheduler's index of every scheduled message plus the block cache (~200 MB), so the
      // heap went to ~580 MB RSS. A soft limit makes the GC collect earlier instead (docs/bench.md "Memory");
      // GOMEMLIMIT in the environment (`off` = none) overrides it.
      env: { ...process.env, GOMEMLIMIT: process.env['GOMEMLIMIT'] ?? NATS_MEMORY_LIMIT },
      stdio: ['ignore', opts.logTo ?? 'ignore', opts.logTo ?? 'pipe'],
    },
  );
  let stderr = '';
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  await new Promise<void>((res, rej) => {
    const onExit = (code: number | null) =>
      rej(new Error(`nats-server exited (${code}) before ready: ${stderr}`));
    child.once('exit', onExit);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('Server is ready')) {
        const listening = /Listening for client connections on [^\s]*:(\d+)/.exec(stderr);
        if (port === -1 && listening) port = Number(listening[1]);
        child.off('exit', onExit);
        if (port === -1) rej(new Error(`nats-server did not say its client port: ${stderr}`));
        else res();
      }
    });
    if (!child.stderr)
      waitForPort(host, port).then(() => {
        child.off('exit', onExit);
        res();
      }, rej);
  });
  child.stderr?.resume();
  return {
    url: `nats://${host}:${port}`,
    port,
    storeDir: opts.storeDir,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitForPort(host: string, port: number): Promise<void> {
  const { connect } = await import('node:net');
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, host, () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not listen on ${host}:${port}`);
}
