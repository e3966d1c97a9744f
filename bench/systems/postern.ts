/**
 * Postern local mode as a system under test: `node bin/postern.ts local` with a generated config (a
 * RelayPolicy letting 127.0.0.0/8 relay, either through the sink as smarthost or via MX records served by the
 * bench's dnsmasq), started in its own process group so nothing survives the bench even if it fails.
 * Ready = the `"msg":"postern ready"` stdout line; roles come from DATA_DIR/pids.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startedGroups } from '../lib/process-groups.ts';
import type { Destinations, RunningSystem } from './system.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export interface PosternOptions {
  dir: string;
  smtpPort: number;
  submissionPort: number;
  to: Destinations;
  /** 'smarthost': everything to the healthy sink. 'mx': route by recipient domain through DNS. */
  route: 'smarthost' | 'mx';
  delivery: number;
  ingress: number;
  /** Extra node flags for the services (e.g. --cpu-prof), passed via NODE_OPTIONS. */
  nodeOptions?: string;
  /** Where the services' stdout/stderr go (a file), so a failure can be diagnosed. */
  logFile: string;
  /** RelayPolicy `delivery.destinations` entries (YAML flow mappings), for the shaping run. */
  destinations?: string[];
  /** Extra environment for the services (e.g. POSTERN_SHAPING=off). */
  env?: Record<string, string>;
  /** RelayPolicy `delivery.retry` (default: schedule [10m, 30m], maxLifetime 1d). */
  retry?: { schedule: string[]; maxLifetime: string };
}

function configYaml(o: PosternOptions): string {
  const smarthost =
    o.route === 'smarthost'
      ? `    smarthost: { host: ${o.to.healthy.host}, port: ${o.to.healthy.port}, tls: none }\n`
      : '';
  // A long first retry interval parks dead-destination mail out of the active window (DESIGN §3).
  const destinations = o.destinations?.length
    ? `    destinations:\n${o.destinations.map((d) => `      - ${d}\n`).join('')}`
    : '';
  return `apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata:
  name: bench-relay
spec:
  clients:
    networks: [127.0.0.0/8]
  limits:
    messageSize: 67108864
    recipientsPerMessage: 1000
  delivery:
    pool: default
${smarthost}${destinations}    retry:
      schedule: [${(o.retry?.schedule ?? ['10m', '30m']).join(', ')}]
      maxLifetime: ${o.retry?.maxLifetime ?? '1d'}
`;
}

export async function startPostern(o: PosternOptions): Promise<RunningSystem> {
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const config = join(o.dir, 'bench.yaml');
  writeFileSync(config, configYaml(o));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // info, the default: the supervisor waits for each service's info-level `ready` line.
    LOG_LEVEL: process.env['BENCH_POSTERN_LOG_LEVEL'] ?? 'info',
    POSTERN_ALLOW_LOOPBACK_MX: 'true',
    POSTERN_MX_PORT: String(o.to.healthy.port),
  };
  if (o.to.dns) env['POSTERN_DNS_SERVERS'] = `${o.to.dns.host}:${o.to.dns.port}`;
  if (o.nodeOptions) env['NODE_OPTIONS'] = o.nodeOptions;
  Object.assign(env, o.env);
  const natsNodes = Number(process.env['BENCH_POSTERN_NATS_CLUSTER'] ?? 1);
  const args = [
    join(ROOT, 'bin/postern.ts'),
    'local',
    '--config',
    config,
    '--data-dir',
    join(o.dir, 'data'),
    '--smtp-port',
    String(o.smtpPort),
    '--submission-port',
    String(o.submissionPort),
    '--delivery',
    String(o.delivery),
    '--ingress',
    String(o.ingress),
    // The bench measures SMTP: no HTTP API process competing for the CPU.
    '--no-api',
    // BENCH_POSTERN_SYNC=always: fsync every JetStream write before the PubAck, like Postfix's fsync before 250.
    '--nats-sync',
    process.env['BENCH_POSTERN_SYNC'] === 'always' ? 'always' : 'default',
    // BENCH_POSTERN_NATS_CLUSTER=3: a 3-node JetStream cluster on this box, streams at R3 (cost of replication).
    '--nats-cluster',
    String(natsNodes),
  ];
  const child: ChildProcess = spawn(join(ROOT, 'node_modules/.bin/node'), args, {
    env,
    detached: true, // own process group: stop() can signal the whole tree by its id
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const keep = (line: string) => {
    log.push(line);
    if (log.length > 2000) log.shift();
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  startedGroups.add(child.pid!);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const dump = () => writeFileSync(o.logFile, `${log.join('\n')}\n`);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // group already gone
        }
      }, 20_000);
      await exited;
      clearTimeout(t);
    }
    // Anything still in the group (a child the supervisor lost) goes too.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // nothing left
    }
    startedGroups.delete(child.pid!);
    dump();
  };
  try {
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error('postern local not ready within 90 s')), 90_000);
      child.once('exit', (code) => rej(new Error(`postern local exited (${code}) before ready`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        keep(line);
        if (line.includes('"msg":"postern ready"')) {
          clearTimeout(t);
          res();
        }
      });
    });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; log: ${o.logFile}\n${log.slice(-15).join('\n')}`);
  }
  const pids = JSON.parse(readFileSync(join(o.dir, 'data', 'pids.json'), 'utf8')) as Record<string, number>;
  const { natsUrl } = JSON.parse(readFileSync(join(o.dir, 'data', 'state.json'), 'utf8')) as {
    natsUrl: string;
  };
  const roles = new Map<number, string>([[child.pid!, 'supervisor']]);
  for (const [name, pid] of Object.entries(pids)) roles.set(pid, name.replace(/-\d+$/, ''));
  return {
    label: `postern (${o.route}${o.env?.['POSTERN_DIRECT_ROUTING'] === '0' ? ', via queue' : ''}${o.delivery > 1 ? `, ${o.delivery} delivery` : ''}${o.ingress > 1 ? `, ${o.ingress} ingress` : ''}${natsNodes > 1 ? `, nats×${natsNodes}` : ''})`,
    smtp: { host: '127.0.0.1', port: o.smtpPort },
    natsUrl,
    processes: () => roles,
    stop,
  };
}
