/**
 * Local mode: nats-server, ingress, queue, delivery and the webhook dispatcher on one machine, no Kubernetes. The config file is
 * loaded into the same KV bucket the operator writes in a cluster, so services cannot tell the difference.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_POOL, type PolicyConfig } from '../common/config/resolved.ts';
import { connectNats, ensureTopology } from '../common/nats.ts';
import { retryUntilDone } from '../common/retry.ts';
import { ensureKeyFile, parseKeyFile, SECRETS_KEY_FILE_ENV, secretBox } from '../common/secrets.ts';
import { createLogger } from '../common/telemetry.ts';
import { loadConfigFile, localKeyFile, resolveConfigText, writeConfig } from './config-file.ts';
import { localIngressSettings } from './ingress-settings.ts';
import { type NatsNode, NatsSupervisor } from './nats-supervisor.ts';
import { type ChildSpec, Supervisor } from './supervisor.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface LocalOptions {
  /** Path of the YAML config, or its text (tests). */
  configPath?: string;
  configText?: string;
  dataDir: string;
  host?: string;
  smtpPort?: number;
  submissionPort?: number;
  /** HTTP submission API port (default 2580; 0 = any free port); `false` runs no API process. */
  apiPort?: number | false;
  natsPort?: number;
  /** nats-server nodes: 1 (default) or a JetStream cluster of N on loopback with every stream at R N (N ≥ 3). */
  natsCluster?: number;
  /** `always`: fsync every JetStream write before the PubAck (see startNatsServer). */
  natsSync?: 'always' | 'default';
  adminPort?: number;
  ingressProcesses?: number;
  deliveryProcesses?: number;
  /** First telemetry port; each process takes the next one. 0 = random ports. */
  metricsBasePort?: number;
  /** Extra environment for every service (e.g. POSTERN_DNS_SERVERS, POSTERN_MX_PORT for tests). */
  env?: Record<string, string>;
  onLine?: (name: string, line: string) => void;
  /** Once a service is ready, copy its output here unparsed (the CLI: stdout/stderr); `onLine` then stops. */
  passthrough?: { out: NodeJS.WritableStream; err: NodeJS.WritableStream };
}

export interface LocalHandle {
  /** Every node's client URL, comma-separated. */
  natsUrl: string;
  /** The first nats-server node (the only one without --nats-cluster); `stop()` stops it for good. */
  nats: NatsNode;
  natsSupervisor: NatsSupervisor;
  supervisor: Supervisor;
  smtpPort: number;
  submissionPort: number;
  /** The HTTP submission API's port; undefined when it was not started. */
  apiPort?: number;
  adminPort: number;
  stop(): Promise<void>;
}

/** V8 old-space cap per service in local mode (MiB); measured in docs/bench.md "Memory". */
export const DEFAULT_HEAP_MIB = 128;
/** V8 semi-space cap per service in local mode (MiB): the young generation's share of RSS (ChildSpec). */
export const DEFAULT_SEMI_SPACE_MIB = 4;
/** The port of a `host:port` address from a ready line. */
function portOf(address: unknown): number {
  const port = Number(/:(\d+)$/.exec(String(address))?.[1]);
  if (!port) throw new Error(`service did not report its address (got ${String(address)})`);
  return port;
}

export async function startLocal(opts: LocalOptions): Promise<LocalHandle> {
  const host = opts.host ?? '127.0.0.1';
  mkdirSync(opts.dataDir, { recursive: true });
  // The key that seals smarthost passwords and DKIM keys in KV; only this process (the writer) and delivery read it.
  const keyFile = ensureKeyFile(localKeyFile(opts.dataDir));
  const box = secretBox(parseKeyFile(readFileSync(keyFile, 'utf8')));
  const entries =
    opts.configText !== undefined
      ? resolveConfigText(opts.configText, 'config', box)
      : loadConfigFile(opts.configPath!, box);
  // Already validated by the line above; the file's IngressSettings document becomes the ingress' environment.
  const ingressSettings = localIngressSettings(opts.configText ?? readFileSync(opts.configPath!, 'utf8'));
  const natsNodes = opts.natsCluster ?? 1;
  if (!Number.isInteger(natsNodes) || natsNodes < 1 || natsNodes === 2)
    throw new Error(`natsCluster must be 1 or at least 3 (got ${natsNodes}): JetStream needs a majority`);
  const natsSupervisor = await NatsSupervisor.start({
    dataDir: opts.dataDir,
    host,
    nodes: natsNodes,
    sync: opts.natsSync ?? 'default',
    ...(opts.natsPort ? { port: opts.natsPort } : {}),
  });
  const nats = natsSupervisor.nodes[0]!;
  const natsUrl = natsSupervisor.url;
  const replicas = Math.min(natsNodes, 3);
  if (opts.onLine) {
    const say = opts.onLine;
    natsSupervisor.on('exit', (name, code, signal) => say(name, `exited (${code ?? signal}); restarting`));
    natsSupervisor.on('restart', (name) => say(name, 'restarted on the same port and store'));
    natsSupervisor.on('restart-failed', (name, err: Error) => say(name, `restart failed: ${err.message}`));
  }
  const supervisor = new Supervisor(opts.passthrough);
  if (opts.onLine) supervisor.on('line', opts.onLine);
  try {
    const nc = await connectNats(natsUrl, 'postern-local');
    // A fresh cluster elects its JetStream meta leader after "Server is ready": retry until streams can be made.
    await retryUntilDone('JetStream streams and buckets', () => ensureTopology(nc, replicas), {
      logger: createLogger('local', 'error'),
      initialDelayMs: 250,
    });
    await writeConfig(nc, entries, true);
    await nc.close();

    // Port 0 = let the service bind any free port and read it from its ready line (tests): picking a free port
    // here and binding it later would race with outgoing connections taking that ephemeral port.
    let smtpPort = opts.smtpPort ?? 2525;
    let submissionPort = opts.submissionPort ?? 2587;
    let adminPort = opts.adminPort ?? 0;
    let apiPort = opts.apiPort === false ? undefined : (opts.apiPort ?? 2580);
    let metricsPort = opts.metricsBasePort ?? 0;
    const nextMetricsPort = () => String(metricsPort === 0 ? 0 : metricsPort++);
    const common = {
      NATS_URL: natsUrl,
      POSTERN_STREAM_REPLICAS: String(replicas),
      POSTERN_METRICS_HOST: host,
      POSTERN_HOSTNAME: process.env['POSTERN_HOSTNAME'] ?? 'localhost',
      // glibc gives each thread that mallocs (libuv's pool, V8's GC and compiler workers) an arena of its own, up
      // to 8 per core, and each keeps its freed memory: 6 arenas held ~19 MB in a loaded ingress. Two are plenty
      // for a single-threaded event loop (docs/bench.md "Memory").
      MALLOC_ARENA_MAX: process.env['MALLOC_ARENA_MAX'] ?? '2',
      ...opts.env,
    };
    const ingressCount = opts.ingressProcesses ?? 1;
    // Every service's V8 heap is capped (ChildSpec.heapMiB, semiSpaceMiB): POSTERN_HEAP_MIB and
    // POSTERN_SEMI_SPACE_MIB, 0 for V8's own sizing.
    const heap = {
      heapMiB: Number(process.env['POSTERN_HEAP_MIB'] ?? DEFAULT_HEAP_MIB) || undefined,
      semiSpaceMiB: Number(process.env['POSTERN_SEMI_SPACE_MIB'] ?? DEFAULT_SEMI_SPACE_MIB) || undefined,
    };
    const listeners = () =>
      JSON.stringify([
        { name: 'mx', host, port: smtpPort, mode: 'relay', ...ingressSettings.listeners.mx },
        // Local mode has no certificate by default, so AUTH is allowed without TLS on loopback only.
        {
          name: 'submission',
          host,
          port: submissionPort,
          mode: 'submission',
          insecureAuth: true,
          ...ingressSettings.listeners.submission,
        },
      ]);
    const pools = new Set([DEFAULT_POOL]);
    for (const [key, doc] of entries)
      if (key.startsWith('policy.')) pools.add((doc as PolicyConfig).delivery.pool);

    const specs: ChildSpec[] = [
      {
        name: 'queue',
        script: join(ROOT, 'services/queue/main.ts'),
        ...heap,
        env: {
          ...common,
          POSTERN_ADMIN_HOST: host,
          POSTERN_ADMIN_PORT: String(adminPort),
          POSTERN_METRICS_PORT: nextMetricsPort(),
        },
      },
      // The webhook dispatcher runs even without Webhook documents: `postern apply` may add some later.
      {
        name: 'webhooks',
        script: join(ROOT, 'services/webhooks/main.ts'),
        ...heap,
        env: { ...common, POSTERN_METRICS_PORT: nextMetricsPort() },
      },
    ];
    for (const pool of pools) {
      for (let i = 0; i < (opts.deliveryProcesses ?? 1); i++) {
        specs.push({
          name: pool === DEFAULT_POOL ? `delivery-${i}` : `delivery-${pool}-${i}`,
          script: join(ROOT, 'services/delivery/main.ts'),
          ...heap,
          env: {
            POSTERN_ALLOW_LOOPBACK_MX: 'true',
            [SECRETS_KEY_FILE_ENV]: keyFile,
            ...common,
            POSTERN_POOL: pool,
            POSTERN_METRICS_PORT: nextMetricsPort(),
          },
        });
      }
    }
    for (let i = 0; i < ingressCount; i++) {
      specs.push({
        name: `ingress-${i}`,
        script: join(ROOT, 'services/ingress/main.ts'),
        ...heap,
        env: {
          ...common,
          ...ingressSettings.env,
          POSTERN_INGRESS_LISTENERS: listeners(),
          POSTERN_REUSE_PORT: ingressCount > 1 ? 'true' : 'false',
          POSTERN_METRICS_PORT: nextMetricsPort(),
        },
      });
    }
    if (apiPort !== undefined) {
      specs.push({
        name: 'api',
        script: join(ROOT, 'services/api/main.ts'),
        ...heap,
        env: {
          ...common,
          POSTERN_API_HOST: host,
          POSTERN_API_PORT: String(apiPort),
          POSTERN_METRICS_PORT: nextMetricsPort(),
        },
      });
    }
    // Queue and delivery first: ingress accepting mail is the last thing to come up. Ports bound as 0 are read
    // back from the ready line and written into the spec, so a restarted process binds the same port again.
    for (const spec of specs) {
      const { ready } = await supervisor.start(spec);
      if (spec.name === 'queue' && adminPort === 0) {
        adminPort = portOf(ready['admin']);
        spec.env['POSTERN_ADMIN_PORT'] = String(adminPort);
      }
      if (spec.name.startsWith('ingress-') && (smtpPort === 0 || submissionPort === 0)) {
        const bound = (ready['listeners'] ?? []) as { name: string; address: string }[];
        smtpPort = portOf(bound.find((l) => l.name === 'mx')?.address);
        submissionPort = portOf(bound.find((l) => l.name === 'submission')?.address);
        for (const s of specs)
          if (s.name.startsWith('ingress-')) s.env['POSTERN_INGRESS_LISTENERS'] = listeners();
      }
      if (spec.name === 'api' && apiPort === 0) {
        apiPort = portOf(ready['api']);
        spec.env['POSTERN_API_PORT'] = String(apiPort);
      }
    }

    const pids: Record<string, number> = {};
    for (const node of natsSupervisor.nodes) pids[node.name] = node.process.pid!;
    for (const [name, c] of supervisor.children) pids[name] = c.process.pid!;
    writeFileSync(join(opts.dataDir, 'pids.json'), `${JSON.stringify(pids, null, 2)}\n`);
    writeFileSync(
      join(opts.dataDir, 'state.json'),
      `${JSON.stringify({ natsUrl, adminPort, apiPort }, null, 2)}\n`,
    );

    return {
      natsUrl,
      nats,
      natsSupervisor,
      supervisor,
      smtpPort,
      submissionPort,
      ...(apiPort !== undefined ? { apiPort } : {}),
      adminPort,
      async stop() {
        await supervisor.stopAll();
        await natsSupervisor.stop();
      },
    };
  } catch (err) {
    await supervisor.stopAll();
    await natsSupervisor.stop();
    throw err;
  }
}
