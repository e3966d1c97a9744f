/**
 * Test helper: a real single-node Kubernetes (scripts/cluster/up.sh) with Postern's images imported
 * (scripts/cluster/images.sh), driven the way a user drives it: kubectl and helm against the API server.
 * The node lives in its own network namespace; this machine reaches it over a veth (hostIp ↔ nodeIp), and routes
 * to the pod and Service ranges go through the node. stop() runs scripts/cluster/down.sh, which also runs when a
 * test fails (after hooks) and from scripts/test.sh's exit trap.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findHelm } from './helm.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Addresses of scripts/cluster/env.sh, read from the file so there is one source. */
function clusterEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(ROOT, 'scripts/cluster/env.sh'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(?:"\$\{[A-Z_]+:-([^}]*)\}"|([^\s#]+))/.exec(line);
    if (m?.[1]) env[m[1]] = m[2] ?? m[3] ?? '';
  }
  return env;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded by timeoutMs); never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({
        code: code ?? (signal ? 128 : -1),
        stdout,
        stderr: signal ? `${stderr}\nkilled by ${signal}` : stderr,
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export interface Cluster {
  kubeconfig: string;
  /** This machine's end of the node link: test peers (sinks, Prometheus) listen here, pods reach it. */
  hostIp: string;
  /** The node: API server, kubelet, NodePorts. */
  nodeIp: string;
  podCidr: string;
  /** Image tags built for the test (the first is the chart's appVersion). */
  imageTags: string[];
  /** The cluster directory (removed by stop()): put test files and hostPath volumes here. */
  dir: string;
  /** The API server's CA certificate and the admin bearer token (system:masters). */
  caFile: string;
  adminToken: string;
  /** Writes a file under the cluster directory, creating its parent. */
  writeFile(path: string, content: string): void;
  /** ctr against the node's containerd (namespace k8s.io holds the pods' containers). */
  ctr(args: string[]): Promise<RunResult>;
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** kubectl that throws with its stderr on failure and returns stdout. */
  k(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  helm(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** The cluster directory's log of one component (kubelet, containerd, …) — for failure messages. */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

/**
 * Builds (or reuses) the images, brings the cluster up and returns handles to it. Throws with the bring-up output
 * when it fails, after tearing down what was started.
 */
export async function startCluster(opts: { imageTags: string[] }): Promise<Cluster> {
  const env = clusterEnv();
  const down = () => run('bash', [join(ROOT, 'scripts/cluster/down.sh')], { timeoutMs: 180_000 });
  const imagesDir = process.env['POSTERN_IMAGES_DIR'] ?? mkdtempSync(join(tmpdir(), 'postern-images-'));
  const images = await run(
    'bash',
    [join(ROOT, 'scripts/cluster/images.sh'), ...opts.imageTags.flatMap((t) => ['--tag', t]), imagesDir],
    { timeoutMs: 1_800_000 },
  );
  if (images.code !== 0) throw new Error(`building images failed:\n${images.stderr.slice(-4000)}`);
  // One "REFERENCE ARCHIVE" line per image.
  const archives = images.stdout
    .split('\n')
    .map((l) => /^\S+\s+(\S+)$/.exec(l.trim())?.[1])
    .filter((a): a is string => !!a);
  await down(); // a cluster left behind by a killed run
  const up = await run('bash', [join(ROOT, 'scripts/cluster/up.sh'), ...archives], { timeoutMs: 900_000 });
  if (up.code !== 0) {
    await down();
    if (!process.env['POSTERN_IMAGES_DIR']) rmSync(imagesDir, { recursive: true, force: true });
    throw new Error(`cluster bring-up failed:\n${up.stderr.slice(-6000)}`);
  }
  const out = (k: string) => new RegExp(`^${k}=(.+)$`, 'm').exec(up.stdout)?.[1] ?? '';
  const kubeconfig = out('KUBECONFIG');
  const kubeBin = out('KUBE_BIN_DIR');
  const clusterDir = out('CLUSTER_DIR');
  const helmBin = findHelm();
  const kubectl: Cluster['kubectl'] = (args, o = {}) =>
    run(join(kubeBin, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], o);
  return {
    kubeconfig,
    hostIp: env['CLUSTER_LINK_HOST_IP'] ?? '',
    nodeIp: env['CLUSTER_NODE_IP'] ?? '',
    podCidr: env['CLUSTER_POD_CIDR'] ?? '',
    imageTags: opts.imageTags,
    dir: clusterDir,
    caFile: join(clusterDir, 'pki/ca.crt'),
    adminToken: readFileSync(join(clusterDir, 'pki/tokens.csv'), 'utf8').split(',')[0] ?? '',
    writeFile(path, content) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    },
    ctr: (args) => run('ctr', ['--address', join(clusterDir, 'containerd/containerd.sock'), ...args]),
    kubectl,
    async k(args, o) {
      const r = await kubectl(args, o);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    },
    helm: (args, timeoutMs = 600_000) =>
      run(helmBin, args, {
        timeoutMs,
        env: {
          KUBECONFIG: kubeconfig,
          HELM_CONFIG_HOME: join(clusterDir, 'helm'),
          HELM_CACHE_HOME: join(clusterDir, 'helm-cache'),
        },
      }),
    logTail(component, lines = 40) {
      try {
        return readFileSync(join(clusterDir, 'logs', `${component}.log`), 'utf8')
          .split('\n')
          .slice(-lines)
          .join('\n');
      } catch {
        return '';
      }
    },
    async stop() {
      await down();
      if (!process.env['POSTERN_IMAGES_DIR']) rmSync(imagesDir, { recursive: true, force: true });
    },
  };
}
