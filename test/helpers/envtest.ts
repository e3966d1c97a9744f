/**
 * Test helper: a real Kubernetes control plane (etcd + kube-apiserver) on loopback, started the way
 * controller-runtime's envtest does: random ports, throwaway dirs, RBAC authorization, an admin credential.
 * Binaries come from KUBEBUILDER_ASSETS / TEST_ASSET_* or scripts/test-bins.sh (built once, cached).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../../services/local/nats-server.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function findControlPlaneBinaries(): { etcd: string; apiserver: string } {
  const env = process.env;
  if (env['TEST_ASSET_ETCD'] && env['TEST_ASSET_KUBE_APISERVER']) {
    return { etcd: env['TEST_ASSET_ETCD'], apiserver: env['TEST_ASSET_KUBE_APISERVER'] };
  }
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-bins.sh'), 'k8s'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const get = (k: string) => new RegExp(`${k}=(.*)`).exec(out)?.[1]?.trim();
  const etcd = get('TEST_ASSET_ETCD');
  const apiserver = get('TEST_ASSET_KUBE_APISERVER');
  if (!etcd || !apiserver)
    throw new Error('could not provide etcd / kube-apiserver (see scripts/test-bins.sh)');
  return { etcd, apiserver };
}

export interface ControlPlane {
  /** Admin (system:masters) credentials for the test API server. */
  kubeConfig: KubeConfig;
  /** Path of a kubeconfig file with the same credentials (for child processes). */
  kubeconfigPath: string;
  url: string;
  /** Stops and starts kube-apiserver only (etcd keeps the data): for watch-resume tests. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

function spawnLogged(bin: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const keep = (c: Buffer) => {
    chunks.push(c);
    if (chunks.length > 400) chunks.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => {
    try {
      writeFileSync(logFile, Buffer.concat(chunks));
    } catch {
      // the directory may already be gone at teardown
    }
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

async function waitFor(
  what: string,
  child: ChildProcess,
  probe: () => Promise<boolean>,
  timeoutMs = 120_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms`);
}

export async function startControlPlane(): Promise<ControlPlane> {
  const bins = findControlPlaneBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'postern-envtest-'));
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = spawnLogged(
    bins.etcd,
    [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync=true',
    ],
    join(dir, 'etcd.log'),
  );
  await waitFor('etcd', etcd, async () => (await fetch(`${etcdUrl}/health`)).ok);

  // Service-account signing keys and a static admin token (envtest uses a client cert; a token is simpler
  // and equally real: the API server authenticates it and RBAC authorizes system:masters).
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const token = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin-uid,system:masters\n`);
  const url = `https://127.0.0.1:${apiPort}`;
  const apiArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--secure-port=${apiPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--authorization-mode=RBAC',
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    `--service-account-issuer=${url}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--disable-admission-plugins=ServiceAccount',
  ];
  let apiserver = spawnLogged(bins.apiserver, apiArgs, join(dir, 'kube-apiserver.log'));

  // kube-apiserver generates a self-signed serving certificate into --cert-dir; trust exactly that.
  const certFile = join(dir, 'certs', 'apiserver.crt');
  await waitFor('kube-apiserver certificate', apiserver, async () => existsSync(certFile));
  const ca = readFileSync(certFile);
  const ready = () =>
    new Promise<boolean>((res) => {
      const req = httpsGet(`${url}/readyz`, { ca, headers: { authorization: `Bearer ${token}` } }, (r) => {
        r.resume();
        res(r.statusCode === 200);
      });
      req.on('error', () => res(false));
    });
  await waitFor('kube-apiserver', apiserver, ready);

  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'envtest', server: url, caData: ca.toString('base64') }],
    users: [{ name: 'admin', token }],
    contexts: [{ name: 'envtest', cluster: 'envtest', user: 'admin', namespace: 'default' }],
    currentContext: 'envtest',
  });
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig());

  return {
    kubeConfig,
    kubeconfigPath,
    url,
    async restartApiServer() {
      await stopChild(apiserver);
      apiserver = spawnLogged(bins.apiserver, apiArgs, join(dir, 'kube-apiserver.log'));
      await waitFor('kube-apiserver', apiserver, ready);
    },
    async stop() {
      await stopChild(apiserver);
      await stopChild(etcd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
