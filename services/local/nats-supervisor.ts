/**
 * Local mode's NATS: one nats-server, or a JetStream cluster of N on loopback, each node restarted with backoff
 * on the same client port, route port and store directory when it dies (like a StatefulSet pod with its volume).
 * Acknowledged messages live in the store (a crash loses nothing the page cache holds; R3 covers node loss),
 * so a restarted node serves them again and the services, which reconnect forever, carry on.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { type ClusterMember, freePort, type NatsServerHandle, startNatsServer } from './nats-server.ts';

export interface NatsNode {
  name: string;
  port: number;
  url: string;
  storeDir: string;
  /** The current process (replaced on every restart). */
  readonly process: ChildProcess;
  /** Stops this node for good (no restart). */
  stop(): Promise<void>;
}

export interface SupervisedNatsOptions {
  dataDir: string;
  host: string;
  /** 1 = a single server (store under dataDir/nats); N > 1 = a cluster (stores under dataDir/nats-<i>). */
  nodes: number;
  /** Client port of the first node (the others take the next ones); default: free ports. */
  port?: number;
  sync: 'always' | 'default';
}

/** Emits 'exit' (node name, code, signal) when a node dies unasked, 'restart' (node name) and 'restart-failed' (node name, error). */
export class NatsSupervisor extends EventEmitter {
  readonly nodes: NatsNode[] = [];
  #stopping = false;

  /** All client URLs, comma-separated (what NATS_URL takes; clients fail over between them). */
  get url(): string {
    return this.nodes.map((n) => n.url).join(',');
  }

  static async start(opts: SupervisedNatsOptions): Promise<NatsSupervisor> {
    const sup = new NatsSupervisor();
    const single = opts.nodes === 1;
    const ports: number[] = [];
    const routes: number[] = [];
    if (!single)
      for (let i = 0; i < opts.nodes; i++) {
        ports.push(opts.port ? opts.port + i : await freePort(opts.host));
        routes.push(await freePort(opts.host));
      }
    // allSettled: a node that failed must not leave its siblings running unsupervised.
    const started = await Promise.allSettled(
      Array.from({ length: opts.nodes }, (_, i) => {
        const cluster: ClusterMember | undefined = single
          ? undefined
          : {
              serverName: `nats-${i}`,
              clusterName: 'postern-local',
              clusterPort: routes[i]!,
              peers: routes.filter((_, j) => j !== i),
            };
        return sup.#startNode({
          name: single ? 'nats-server' : `nats-${i}`,
          storeDir: join(opts.dataDir, single ? 'nats' : `nats-${i}`),
          host: opts.host,
          sync: opts.sync,
          ...(single ? (opts.port ? { port: opts.port } : {}) : { port: ports[i]! }),
          ...(cluster ? { cluster } : {}),
        });
      }),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await sup.stop();
      throw failed.reason;
    }
    sup.nodes.sort((a, b) => a.name.localeCompare(b.name));
    return sup;
  }

  async #startNode(o: Parameters<typeof startNatsServer>[0] & { name: string }): Promise<void> {
    let handle: NatsServerHandle = await startNatsServer(o);
    let stopped = false;
    let restarts = 0;
    const node: NatsNode = {
      name: o.name,
      port: handle.port,
      url: handle.url,
      storeDir: o.storeDir,
      get process() {
        return handle.process;
      },
      stop: async () => {
        stopped = true;
        await handle.stop();
      },
    };
    this.nodes.push(node);
    // The same port on restart: a port picked by the first start (-1) is fixed from then on, since the services'
    // NATS_URL names it.
    const again = { ...o, port: handle.port };
    const watch = (h: NatsServerHandle) =>
      h.process.once('exit', (code, signal) => {
        if (stopped || this.#stopping) return;
        this.emit('exit', o.name, code, signal);
        void restart();
      });
    const restart = async () => {
      while (!stopped && !this.#stopping) {
        restarts++;
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** Math.min(restarts, 6), 10_000)).unref());
        if (stopped || this.#stopping) return;
        try {
          handle = await startNatsServer(again);
          this.emit('restart', o.name);
          watch(handle);
          return;
        } catch (err) {
          this.emit('restart-failed', o.name, err);
        }
      }
    };
    watch(handle);
  }

  /** Stops every node for good. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}
