/** Test helper: a real JetStream-enabled nats-server on a free loopback port with a throwaway store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsServerHandle, startNatsServer } from '../../services/local/nats-server.ts';

export interface TestNats extends NatsServerHandle {
  /** Stops the server and removes its store directory. */
  cleanup(): Promise<void>;
  /** Stops and starts the server again on the same port with the same store (outage tests). */
  restart(): Promise<TestNats>;
}

export async function startTestNats(port?: number, storeDir?: string): Promise<TestNats> {
  const dir = storeDir ?? mkdtempSync(join(tmpdir(), 'postern-nats-'));
  const h = await startNatsServer({ storeDir: dir, ...(port ? { port } : {}) });
  return {
    ...h,
    async cleanup() {
      await h.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await h.stop();
      return startTestNats(h.port, dir);
    },
  };
}
